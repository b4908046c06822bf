//! Requests other than tool calls (prompts, resources, and the requests an upstream puts
//! to the caller during a call): decided by the same policy, for every identity in the
//! chain, at the tier the owner's manifest gives (`read` by default).
//! They have no approval path: an `approve` effect refuses them with a message saying so.
//! [`PermittedAccess`] is the only value the upstream accepts for them, and only
//! [`Policy::authorize_access`] makes one.

use serde_json::{Map, Value};

use super::{Decision, Effect, Policy};
use crate::identity::Caller;
use crate::manifest::Tier;

/// What kind of thing is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKind {
    Prompt,
    /// Completion of a prompt's argument: decided on the prompt itself.
    PromptCompletion,
    /// `resources/read`; the name is the upstream's own URI.
    Resource,
    /// Completion of a resource template's argument: decided on the template's URI.
    ResourceCompletion,
    /// `resources/subscribe`: reading every future update, decided like a read.
    Subscription,
    /// An upstream asking the caller's model (`sampling/createMessage`) during a call
    /// to the tool named.
    Sampling,
    /// An upstream asking the caller's user (`elicitation/create`) during a call.
    Elicitation,
    /// An upstream asking for the caller's roots (`roots/list`) during a call.
    Roots,
    /// `tasks/get`, `tasks/update`, `tasks/cancel` on a task a call became; the name is
    /// the gateway's name for the task. Only its creator's chain may (not a policy rule).
    TaskGet,
    TaskUpdate,
    TaskCancel,
}

impl AccessKind {
    /// The MCP method, for the audit record.
    pub fn method(self) -> &'static str {
        match self {
            AccessKind::Prompt => "prompts/get",
            AccessKind::PromptCompletion | AccessKind::ResourceCompletion => "completion/complete",
            AccessKind::Resource => "resources/read",
            AccessKind::Subscription => "resources/subscribe",
            AccessKind::Sampling => "sampling/createMessage",
            AccessKind::Elicitation => "elicitation/create",
            AccessKind::Roots => "roots/list",
            AccessKind::TaskGet => "tasks/get",
            AccessKind::TaskUpdate => "tasks/update",
            AccessKind::TaskCancel => "tasks/cancel",
        }
    }

    fn segment(self) -> &'static str {
        match self {
            AccessKind::Prompt | AccessKind::PromptCompletion => "prompts",
            AccessKind::Resource | AccessKind::ResourceCompletion | AccessKind::Subscription => {
                "resources"
            }
            AccessKind::Sampling => "sampling",
            AccessKind::Elicitation => "elicitation",
            AccessKind::Roots => "roots",
            AccessKind::TaskGet | AccessKind::TaskUpdate | AccessKind::TaskCancel => "tasks",
        }
    }
}

/// One request to decide.
#[derive(Debug, Clone)]
pub struct Access {
    pub caller: Caller,
    pub kind: AccessKind,
    pub server: String,
    /// The name on the upstream.
    pub name: String,
    pub tier: Tier,
    pub args: Map<String, Value>,
}

impl Access {
    /// The Casbin object: `server/prompts/NAME`, `server/resources/URI`, or
    /// `server/sampling/TOOL` (likewise `elicitation`, `roots`) for the tool whose call
    /// asked; so `server/*` rules cover it, and rules can single each out.
    pub fn object(&self) -> String {
        format!("{}/{}/{}", self.server, self.kind.segment(), self.name)
    }
}

/// A decided access that may go upstream.
#[derive(Debug)]
pub struct PermittedAccess {
    access: Access,
    decision: Decision,
}

impl PermittedAccess {
    pub fn access(&self) -> &Access {
        &self.access
    }

    pub fn decision(&self) -> &Decision {
        &self.decision
    }
}

/// A refused access, with what the caller is told.
#[derive(Debug)]
pub struct RefusedAccess {
    pub access: Access,
    pub decision: Decision,
    pub message: String,
}

impl Policy {
    /// Decide an access: allowed for the whole chain, or refused with the reason.
    pub fn authorize_access(&self, access: Access) -> Result<PermittedAccess, Box<RefusedAccess>> {
        let decision = self.decide(&access.caller, &access.object(), access.tier);
        let message = match decision.effect {
            // Every identity in the chain allows it.
            Effect::Allow => return Ok(PermittedAccess { access, decision }),
            // A deny, a missing rule or a Casbin error somewhere in the chain.
            Effect::Deny => decision
                .reason
                .clone()
                .unwrap_or_else(|| "denied by policy".into()),
            // Only tool calls can wait for a human approver or the principal.
            Effect::Approve | Effect::Confirm | Effect::ConfirmInClient => format!(
                "`{}` requires {} by policy, which a {} request cannot wait for; ask for an `allow` rule",
                access.object(),
                match decision.effect {
                    Effect::Approve => "a human approval",
                    _ => "the confirmation of the user the agent acts for",
                },
                access.kind.method()
            ),
        };
        Err(Box::new(RefusedAccess {
            access,
            decision,
            message,
        }))
    }
}
