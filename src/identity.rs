//! Who is calling: the acting agent and its delegation chain (the principal it acts for,
//! then any intermediate agents). Built from verified sources only: the config's stdio
//! identity, and over HTTP a verified credential ([`Authenticator`]: an API key, or a JWT
//! whose `sub` and RFC 8693 `act` claims give the chain). Chain data asserted anywhere
//! else never reaches a [`Caller`]. This module does not authorise anything.

mod authenticate;
mod jwt;
pub mod task;

use serde::Serialize;

use crate::config::IdentityConfig;
pub use authenticate::{API_KEY_PREFIX, Authenticator, new_api_key};
pub use task::Task;

/// A caller: the agent making the call and everyone it acts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caller {
    /// The principal at the root of the chain (usually a user), if any.
    pub principal: Option<String>,
    /// The agents, from the one the principal delegated to, to the one calling now.
    pub agents: Vec<String>,
    /// The connection/session this call arrived on (for the audit record).
    pub session: String,
    /// The credential that proved the chain, when one did (HTTP callers).
    pub credential: Option<Credential>,
    /// The task this call is for, when it declared one or its credential carries one.
    pub task: Option<Task>,
}

/// What proved a caller's identity, for the audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Credential {
    /// `api_key` or `jwt`.
    pub kind: &'static str,
    /// The token's issuer (`iss`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The token's id (`jti`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// A verified HTTP caller, before it is tied to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub principal: Option<String>,
    pub agents: Vec<String>,
    pub credential: Credential,
    /// The task its token carries (`task` claim).
    pub task: Option<Task>,
}

impl Verified {
    /// This caller on `session`.
    pub fn caller(&self, session: impl Into<String>) -> Caller {
        Caller {
            principal: self.principal.clone(),
            agents: self.agents.clone(),
            session: session.into(),
            credential: Some(self.credential.clone()),
            task: self.task.clone(),
        }
    }
}

/// Why a credential was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credential: send `Authorization: Bearer <token or API key>`")]
    Missing,
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the token lacks the scope `{0}`")]
    InsufficientScope(String),
}

/// Refuse a chain deeper than `max` identities or naming anyone twice (a cycle).
pub fn check_chain(
    principal: Option<&str>,
    agents: &[String],
    max: usize,
) -> Result<(), AuthError> {
    let chain: Vec<&str> = principal
        .into_iter()
        .chain(agents.iter().map(String::as_str))
        .collect();
    if chain.len() > max {
        return Err(AuthError::Invalid(format!(
            "the delegation chain has {} identities, more than the {max} allowed",
            chain.len()
        )));
    }
    for (i, id) in chain.iter().enumerate() {
        if chain.iter().skip(i + 1).any(|other| other == id) {
            return Err(AuthError::Invalid(format!(
                "the delegation chain names `{id}` twice (a cycle)"
            )));
        }
    }
    Ok(())
}

impl Caller {
    /// The caller a configured identity describes, on one session.
    pub fn from_config(identity: &IdentityConfig, session: impl Into<String>) -> Self {
        Self {
            principal: identity.on_behalf_of.clone(),
            agents: vec![identity.agent.clone()],
            session: session.into(),
            credential: None,
            task: None,
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
