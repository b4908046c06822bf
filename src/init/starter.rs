//! The files `init` writes around the upstreams: `warden.toml`'s other sections, a
//! starter policy for one person and their client, and the Casbin model.

use super::upstreams::Upstream;

/// The Casbin model shipped with the gateway (the one every example uses).
pub const MODEL: &str = include_str!("../../policies/model.conf");

/// Who the client and its user are in the policy.
pub struct Identities {
    pub agent: String,
    pub user: String,
}

/// `warden.toml`: the gateway's sections, then one `[[upstream]]` per server that
/// started, then the ones that did not, commented out with why.
pub fn config(
    from: &str,
    who: &Identities,
    token_hash: &str,
    secrets: bool,
    upstreams: &[&Upstream],
    failed: &[(&Upstream, String)],
) -> String {
    let env_file = match secrets {
        true => {
            "env_file = \"secrets.env\"                # credentials your servers need (0600: keep it out of version control)\n"
        }
        false => "",
    };
    let mut out = format!(
        "# mcp-warden configuration, written by `mcp-warden init --from {from}`.\n\
         # Your client's MCP servers, now behind the gateway: each tool has a tier in\n\
         # tool-manifests/ and every call is decided by policies/policy.csv and written to\n\
         # the audit log in .mcp-warden/. Check it all with `mcp-warden check --config <this file>`.\n\
         \n\
         [gateway]\n\
         manifests = \"tool-manifests\"\n\
         policy_model = \"policies/model.conf\"\n\
         policy = \"policies/policy.csv\"\n\
         state_dir = \".mcp-warden\"\n\
         {env_file}\
         \n\
         [approval]\n\
         timeout = \"5m\"                          # how long an `act` call waits for a decision\n\
         \n\
         [listen]\n\
         admin = \"127.0.0.1:8788\"                # the approvals page: http://127.0.0.1:8788/\n\
         \n\
         [[approver]]                            # you decide your agent's `act` calls\n\
         identity = {user}\n\
         sha256 = \"{token_hash}\"  # of the approver token init printed once: no agent holds it\n\
         \n\
         [identity.stdio]                        # who is calling when your client starts the gateway\n\
         agent = {agent}\n\
         on_behalf_of = {user}\n",
        user = quoted(&who.user),
        agent = quoted(&who.agent),
    );
    for upstream in upstreams {
        out.push('\n');
        out.push_str(&upstream.toml);
    }
    for (upstream, why) in failed {
        out.push_str(&format!(
            "\n# `{}` did not start, so it is left out: {}\n# Fix it, remove the `#`s and run `mcp-warden manifest init --config warden.toml --upstream {}`.\n",
            upstream.name,
            why.lines().next().unwrap_or_default(),
            upstream.id
        ));
        for line in upstream.toml.lines() {
            out.push_str(&format!("# {line}\n"));
        }
    }
    out
}

/// The starter policy: the user and their client's agent may read and transform with
/// every tool; `act` waits for a human decision.
pub fn policy(who: &Identities, servers: &[&Upstream]) -> String {
    let ids: Vec<&str> = servers.iter().map(|u| u.id.as_str()).collect();
    format!(
        "# Starter policy, written by `mcp-warden init` for {user} and {agent}.\n\
         #   p, SUBJECT, OBJECT (server/tool, `*` matches anything), TIER (read|transform|act|approve|*), EFFECT\n\
         #   g, IDENTITY, ROLE\n\
         # Every identity in a call's chain (you, and the agent acting for you) must be allowed.\n\
         # Servers: {servers}.\n\
         #\n\
         # To tighten it:\n\
         # - allow one server only:       p, role:me, fs/*, read, allow   (instead of */*)\n\
         # - refuse a tool outright:       p, role:me, fs/move_file, *, deny\n\
         # - let an `act` tool run freely: p, role:me, memory/delete_entities, act, allow\n\
         # - a tool's tier is in tool-manifests/SERVER.toml: review them, they decide which row applies.\n\
         \n\
         # Reading and changing things inside your own scope: allowed.\n\
         p, role:me, */*, read, allow\n\
         p, role:me, */*, transform, allow\n\
         # Acting on the world (sending, deleting, paying): waits until you confirm it yourself\n\
         # (`confirm`), on the approvals page (http://127.0.0.1:8788/, signed in with your approver\n\
         # token) or with `mcp-warden approvals approve ID`. Your token is one no agent holds.\n\
         # To be asked in your MCP client instead (when it supports elicitation), write\n\
         # `confirm_in_client`: handier, but weaker, since a client could let its model answer.\n\
         # To require someone else's approval, write `approve` and add them as an approver.\n\
         p, role:me, */*, act, confirm\n\
         \n\
         g, {user}, role:me\n\
         g, {agent}, role:me\n",
        user = who.user,
        agent = who.agent,
        servers = ids.join(", "),
    )
}

fn quoted(s: &str) -> String {
    crate::manifest::skeleton::quoted(s)
}
