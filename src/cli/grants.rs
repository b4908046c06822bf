//! `mcp-warden grant add|list|revoke`: just-in-time grants through the admin API, as an
//! approver (the same credentials as `mcp-warden approvals`). The gateway checks who may
//! grant what and audits every step.

use clap::Subcommand;
use serde_json::{Value, json};

use super::approvals::{Client, Connection};
use crate::config::Config;
use crate::escape::visible;

#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// Give an identity a time-boxed permission on some tools at one tier.
    Add {
        /// Who gets it, e.g. `agent:x`.
        #[arg(long)]
        to: String,
        /// Only while it acts for this principal, e.g. `user:y`.
        #[arg(long)]
        on_behalf_of: Option<String>,
        /// `server/tool` pattern (`*` matches anything), e.g. `crm/*`.
        #[arg(long)]
        tools: String,
        /// `read`, `transform` or `act`.
        #[arg(long)]
        tier: String,
        /// How long it lasts, e.g. `30m` (at most 24h).
        #[arg(long)]
        ttl: String,
        /// Why it is needed (kept in the audit log).
        #[arg(long)]
        reason: String,
        /// Only for calls of this task (or a sub-task of it); it ends with the task.
        #[arg(long)]
        task: Option<String>,
    },
    /// List grants (active, revoked and expired).
    List,
    /// Revoke a grant; the next call no longer uses it.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// End a task: the grants bound to it (and to its sub-tasks) end now.
    End { id: String },
}

/// `mcp-warden task end ID` through the admin API.
pub async fn run_task(
    command: TaskCommand,
    conn: Connection,
    config: Config,
) -> Result<(), String> {
    let client = Client::connect(&conn, &config)?;
    let TaskCommand::End { id } = command;
    let path = format!("/tasks/{}/end", id.replace('/', "%2F"));
    let ended = client.send("POST", &path, Some(json!({}))).await?;
    let list = |k: &str| {
        ended
            .get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(visible)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    println!(
        "task `{}` ended; grants ended: {}",
        visible(&id),
        list("ended")
    );
    let left = list("left");
    if !left.is_empty() {
        eprintln!("grants you may not revoke, left as they were: {left}");
    }
    Ok(())
}

pub async fn run(command: GrantCommand, conn: Connection, config: Config) -> Result<(), String> {
    let client = Client::connect(&conn, &config)?;
    match command {
        GrantCommand::Add {
            to,
            on_behalf_of,
            tools,
            tier,
            ttl,
            reason,
            task,
        } => {
            let body = json!({"to": to, "on_behalf_of": on_behalf_of, "tools": tools, "tier": tier, "ttl": ttl, "reason": reason, "task": task});
            let grant = client.send("POST", "/grants", Some(body)).await?;
            println!("{}", line(&grant));
        }
        GrantCommand::List => {
            let listed = client.send("GET", "/grants", None).await?;
            let grants = listed
                .get("grants")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if grants.is_empty() {
                println!("no grants");
            }
            for g in &grants {
                println!("{}", line(g));
            }
        }
        GrantCommand::Revoke { id } => {
            let id: String = id
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            let grant = client
                .send("POST", &format!("/grants/{id}/revoke"), None)
                .await?;
            println!("{}", line(&grant));
        }
    }
    Ok(())
}

/// One grant as a line: id, status, who, what, until when, by whom, why.
fn line(g: &Value) -> String {
    let s = |k: &str| visible(g.get(k).and_then(Value::as_str).unwrap_or(""));
    let expires = g.get("expires").and_then(Value::as_u64).unwrap_or(0);
    let until = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(expires),
    );
    let principal = match s("on_behalf_of") {
        p if p.is_empty() => String::new(),
        p => format!(" for {p}"),
    };
    let principal = match s("task") {
        t if t.is_empty() => principal,
        t => format!("{principal} in task {t}"),
    };
    format!(
        "{}  {:<8} {}{} may use {} ({}) until {until}; granted by {}: {}",
        s("id"),
        s("status"),
        s("to"),
        principal,
        s("tools"),
        s("tier"),
        s("by"),
        s("reason")
    )
}
