//! `mcp-warden approvals …`: an approver's terminal client of the admin JSON API, and
//! `new-token` to make an approver credential. Agent-supplied text is printed with
//! control, bidi and invisible characters escaped, so it cannot rewrite the terminal.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::{Value, json};

use crate::admin::auth::{new_token, token_file, token_hash};
use crate::config::Config;
use crate::escape::visible;

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// List requests waiting for you (or all with --all).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Show one request in full.
    Show { id: String },
    /// Approve a request.
    Approve {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Deny a request.
    Deny {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Make a token for an approver and print the `[[approver]]` lines for warden.toml.
    NewToken {
        #[arg(long)]
        identity: String,
    },
}

/// Where and as whom to reach the admin API.
#[derive(Debug, clap::Args)]
pub struct Connection {
    /// The gateway configuration; default: the embedded defaults.
    #[arg(long, short, global = true)]
    pub config: Option<PathBuf>,
    /// The admin listener's URL; default: `[approval] public_url` or `[listen] admin`.
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// A file holding your approver token; default: $MCP_WARDEN_APPROVER_TOKEN, else the
    /// token the running gateway made for `--as` (or its only approver).
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// Which configured approver's generated token to use.
    #[arg(long = "as", global = true)]
    pub as_identity: Option<String>,
}

pub async fn run(
    command: ApprovalsCommand,
    conn: Connection,
    config: Config,
) -> Result<(), String> {
    if let ApprovalsCommand::NewToken { identity } = &command {
        return new_approver(identity);
    }
    let client = Client::connect(&conn, &config)?;
    match command {
        ApprovalsCommand::List { all } => {
            let status = if all { "all" } else { "pending" };
            let v = client
                .send("GET", &format!("/approvals?status={status}"), None)
                .await?;
            print_list(&v);
        }
        ApprovalsCommand::Show { id } => {
            print_one(&client.send("GET", &path(&id, None), None).await?)
        }
        ApprovalsCommand::Approve { id, comment } => {
            print_one(&client.decide(&id, "approve", comment).await?);
        }
        ApprovalsCommand::Deny { id, comment } => {
            print_one(&client.decide(&id, "deny", comment).await?);
        }
        ApprovalsCommand::NewToken { .. } => {}
    }
    Ok(())
}

fn path(id: &str, verdict: Option<&str>) -> String {
    let id: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    match verdict {
        Some(v) => format!("/approvals/{id}/{v}"),
        None => format!("/approvals/{id}"),
    }
}

fn new_approver(identity: &str) -> Result<(), String> {
    if !crate::config::valid_identity_name(identity) {
        return Err(format!(
            "`{identity}` must look like `kind:name`, e.g. `user:carol`"
        ));
    }
    let token = new_token();
    eprintln!("Give this token to {identity} (it is shown once; keep it secret):");
    println!("{token}");
    eprintln!(
        "\nAdd to warden.toml:\n\n[[approver]]\nidentity = \"{identity}\"\nsha256 = \"{}\"",
        token_hash(&token)
    );
    eprintln!(
        "\nand make sure the policy lets {identity} approve, e.g. `p, {identity}, server/*, approve, allow`."
    );
    Ok(())
}

/// The approver token: env, file, or the one the gateway generated.
fn token(conn: &Connection, config: &Config) -> Result<String, String> {
    if let Ok(t) = std::env::var("MCP_WARDEN_APPROVER_TOKEN") {
        return Ok(t.trim().to_string());
    }
    let file = match (&conn.token_file, &conn.as_identity) {
        (Some(f), _) => f.clone(),
        (None, Some(who)) => token_file(&config.boot.state_dir, who),
        (None, None) => only_generated(config)?,
    };
    read_token(&file)
}

fn only_generated(config: &Config) -> Result<PathBuf, String> {
    let generated: Vec<&str> = config
        .boot
        .approval
        .approvers
        .iter()
        .filter(|a| a.sha256.is_none())
        .map(|a| a.identity.as_str())
        .collect();
    match generated.as_slice() {
        [one] => Ok(token_file(&config.boot.state_dir, one)),
        [] => Err("no approver token: set MCP_WARDEN_APPROVER_TOKEN or pass --token-file".into()),
        many => Err(format!(
            "several approvers ({}): choose one with --as, or pass --token-file",
            many.join(", ")
        )),
    }
}

fn read_token(file: &Path) -> Result<String, String> {
    std::fs::read_to_string(file)
        .map(|t| t.trim().to_string())
        .map_err(|e| {
            format!(
                "cannot read the approver token `{}`: {e} (is the gateway running? it writes the token when it starts)",
                file.display()
            )
        })
}

/// The admin API, as one approver.
pub(super) struct Client {
    url: String,
    token: String,
}

impl Client {
    /// Where the admin listener is and the approver token to present there.
    pub(super) fn connect(conn: &Connection, config: &Config) -> Result<Self, String> {
        let url = conn
            .url
            .clone()
            .or_else(|| config.boot.approval.public_url.clone())
            .or_else(|| config.boot.admin.map(|a| format!("http://{a}")))
            .ok_or("no admin listener: set `[listen] admin` in the config, or pass --url")?;
        let token = token(conn, config)?;
        Ok(Self { url, token })
    }

    pub(super) async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let http = reqwest::Client::new();
        let url = format!("{}{path}", self.url);
        let request = match method {
            "POST" => http.post(&url).json(&body.unwrap_or_else(|| json!({}))),
            _ => http.get(&url),
        };
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| format!("cannot reach the admin listener at {}: {e}", self.url))?;
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let message = f(&value, "error").as_str().unwrap_or("no reason given");
        let lines: Vec<String> = message.lines().map(visible).collect();
        Err(format!("refused ({status}): {}", lines.join("\n")))
    }

    async fn decide(
        &self,
        id: &str,
        verdict: &str,
        comment: Option<String>,
    ) -> Result<Value, String> {
        let body = json!({ "comment": comment });
        self.send("POST", &path(id, Some(verdict)), Some(body))
            .await
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => visible(s),
        Value::Null => "-".into(),
        other => visible(&other.to_string()),
    }
}

fn left(v: &Value) -> String {
    let ms = f(v, "time_left_ms").as_u64().unwrap_or(0);
    if f(v, "status") != "pending" {
        return text(f(v, "status"));
    }
    format!("{}m{:02}s left", ms / 60_000, (ms / 1000) % 60)
}

fn print_list(v: &Value) {
    let requests = f(v, "requests").as_array().cloned().unwrap_or_default();
    if requests.is_empty() {
        eprintln!("nothing waiting for {}", text(f(v, "approver")));
        return;
    }
    for r in &requests {
        let yours = match f(r, "yours_to_confirm").as_bool() {
            Some(true) => "  (yours to confirm: your own agent asks)",
            _ => "",
        };
        println!(
            "{}  {}/{} [{}]  {} for {}  {}{yours}\n    intent: {}",
            text(f(r, "id")),
            text(f(r, "server")),
            text(f(r, "tool")),
            text(f(r, "tier")),
            text(f(r, "agent")),
            text(f(r, "on_behalf_of")),
            left(r),
            text(f(r, "intent")),
        );
    }
}

fn print_one(r: &Value) {
    let pretty = serde_json::to_string_pretty(&f(r, "arguments")).unwrap_or_default();
    let rows = [
        ("request", text(f(r, "id"))),
        ("status", left(r)),
        (
            "tool",
            format!(
                "{}/{} (tier {})",
                text(f(r, "server")),
                text(f(r, "tool")),
                text(f(r, "tier"))
            ),
        ),
        ("agent", text(f(r, "agent"))),
        ("on behalf of", text(f(r, "on_behalf_of"))),
        ("intent", text(f(r, "intent"))),
        (
            "approvals",
            format!(
                "{} of {}",
                f(r, "approved_by").as_array().map_or(0, Vec::len),
                f(r, "quorum")
            ),
        ),
        (
            "arguments",
            pretty
                .lines()
                .map(visible)
                .collect::<Vec<_>>()
                .join("\n               "),
        ),
    ];
    for (k, v) in rows {
        println!("{k:>13}: {v}");
    }
    if let Some(why) = f(r, "cannot_decide").as_str() {
        println!("{:>13}: {}", "note", visible(why));
    }
}

/// A field of a JSON object, or null.
fn f<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or(&Value::Null)
}
