//! `mcp-warden init --from CONFIG`: an MCP client's servers put behind the gateway in
//! one command. Reads the client's server list (see `clients`), writes into a new
//! directory a `warden.toml` with one `[[upstream]]` per server and its credentials in a
//! 0600 env file (see `upstreams`), a manifest per server from its live tools, a starter
//! policy (see `starter`), and prints (or, asked to, writes) the one entry that replaces
//! them all in the client's config. A server that does not start is reported and left
//! out; nothing that exists is overwritten without `--force`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::catalog::PinStore;
use crate::config::{Config, env_file};
use crate::manifest::skeleton;

pub mod clients;
mod starter;
mod upstreams;

use clients::{ClientFile, ListKey};
use starter::Identities;
use upstreams::Upstream;

/// How long a server may take to start and list its tools (`npx -y` may download it).
const START_LIMIT: Duration = Duration::from_secs(120);

/// The entry's name in the client's server list.
pub const ENTRY: &str = "mcp-warden";

/// What `init` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The client's config file.
    pub from: PathBuf,
    /// The directory to write into.
    pub dir: PathBuf,
    /// Replace files that exist.
    pub force: bool,
    /// Rewrite the client's file (after a backup) instead of printing the entry.
    pub write_client_config: bool,
    /// The user the client's agent acts for (`user:NAME`); default: from `$USER`.
    pub user: Option<String>,
}

/// What `init` did, for the command's output and for tests.
#[derive(Debug)]
pub struct Report {
    pub config: PathBuf,
    pub written: Vec<(String, usize)>,
    pub failed: Vec<(String, String)>,
    pub skipped: Vec<(String, String)>,
    pub moved: Vec<String>,
    /// The client config's new entry, as JSON, and the list it goes in.
    pub entry: Value,
    pub list_key: ListKey,
    /// Where the client's original file was saved, when it was rewritten.
    pub backup: Option<PathBuf>,
    /// The user and their approver token (printed once; only its hash is written).
    pub user: String,
    pub token: String,
}

pub async fn run(options: &Options) -> Result<Report, String> {
    let client = clients::read(&options.from)?;
    let plan = upstreams::plan(&client.servers);
    if plan.upstreams.is_empty() {
        let why: Vec<String> = plan
            .skipped
            .iter()
            .map(|(name, why)| format!("\n  {name}: {why}"))
            .collect();
        return Err(format!(
            "no server in `{}` can be put behind the gateway:{}",
            options.from.display(),
            why.concat()
        ));
    }
    let dir = absolute(&options.dir)?;
    let who = identities(client.client, options.user.as_deref())?;
    let files = Files::new(&dir, &plan.upstreams, !plan.vars.is_empty());
    files.refuse_existing(options.force)?;
    files.create_dirs()?;
    if !plan.vars.is_empty() {
        write_secret_file(&files.secrets, &plan.vars)?;
    }
    let from = options.from.display().to_string();
    let all: Vec<&Upstream> = plan.upstreams.iter().collect();
    let secrets = !plan.vars.is_empty();
    // The user's own approver credential: shown once, only its hash is kept.
    let token = crate::admin::auth::new_token();
    let hash = crate::admin::auth::token_hash(&token);
    write(
        &files.config,
        &starter::config(&from, &who, &hash, secrets, &all, &[]),
    )?;
    write(&files.model, starter::MODEL)?;
    let config = Config::load(&files.config).map_err(|e| e.to_string())?;
    let (started, failed) = start_each(&config, &plan.upstreams).await;
    let pins = PinStore::new(&config.boot.state_dir);
    let mut written = Vec::new();
    for (upstream, live) in &started {
        let path = files.manifest(&upstream.id);
        write(&path, &skeleton::skeleton(&upstream.id, live))?;
        live.iter().for_each(|d| pins.remember(d));
        written.push((upstream.id.clone(), live.len()));
    }
    let ok: Vec<&Upstream> = started.iter().map(|(u, _)| *u).collect();
    write(&files.policy, &starter::policy(&who, &ok))?;
    if !failed.is_empty() {
        write(
            &files.config,
            &starter::config(&from, &who, &hash, secrets, &ok, &failed),
        )?;
    }
    let failed: Vec<(String, String)> = failed
        .into_iter()
        .map(|(u, why)| (u.name.clone(), why))
        .collect();
    if ok.is_empty() {
        return Err(format!(
            "no server started, so the gateway would front nothing:{}",
            failed
                .iter()
                .map(|(n, why)| format!("\n  {n}: {why}"))
                .collect::<String>()
        ));
    }
    let entry = client_entry(&client, &files.config)?;
    let governed: Vec<&str> = ok.iter().map(|u| u.name.as_str()).collect();
    let backup = match options.write_client_config {
        true => Some(rewrite_client(&options.from, &client, &entry, &governed)?),
        false => None,
    };
    Ok(Report {
        config: files.config,
        written,
        failed,
        skipped: plan.skipped,
        moved: plan.moved,
        entry,
        list_key: client.key,
        backup,
        user: who.user,
        token,
    })
}

/// Every path `init` writes.
struct Files {
    config: PathBuf,
    secrets: PathBuf,
    model: PathBuf,
    policy: PathBuf,
    manifests: PathBuf,
    all: Vec<PathBuf>,
}

impl Files {
    fn new(dir: &Path, upstreams: &[Upstream], secrets: bool) -> Self {
        let manifests = dir.join("tool-manifests");
        let mut files = Self {
            config: dir.join("warden.toml"),
            secrets: dir.join("secrets.env"),
            model: dir.join("policies/model.conf"),
            policy: dir.join("policies/policy.csv"),
            manifests,
            all: Vec::new(),
        };
        files.all = [&files.config, &files.model, &files.policy]
            .into_iter()
            .cloned()
            .chain(secrets.then(|| files.secrets.clone()))
            .chain(upstreams.iter().map(|u| files.manifest(&u.id)))
            .collect();
        files
    }

    fn manifest(&self, id: &str) -> PathBuf {
        self.manifests.join(format!("{id}.toml"))
    }

    /// Refuse before writing anything when any file exists (unless `force`).
    fn refuse_existing(&self, force: bool) -> Result<(), String> {
        let existing: Vec<String> = self
            .all
            .iter()
            .filter(|p| p.exists())
            .map(|p| format!("\n  {}", p.display()))
            .collect();
        match (existing.is_empty(), force) {
            (true, _) | (false, true) => Ok(()),
            (false, false) => Err(format!(
                "these files exist, and init does not overwrite them without --force:{}\n(or choose another --dir)",
                existing.concat()
            )),
        }
    }

    fn create_dirs(&self) -> Result<(), String> {
        for dir in [&self.manifests, &self.policy.with_file_name("")] {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
        }
        Ok(())
    }
}

fn absolute(dir: &Path) -> Result<PathBuf, String> {
    std::env::current_dir()
        .map(|cwd| cwd.join(dir))
        .map_err(|e| format!("cannot find the working directory: {e}"))
}

/// The agent (`agent:<client>`) and the user it acts for (`--user`, else `$USER`).
fn identities(client: &str, user: Option<&str>) -> Result<Identities, String> {
    let name = match user {
        Some(u) => u.strip_prefix("user:").unwrap_or(u).to_string(),
        None => std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .unwrap_or_else(|_| "me".into()),
    };
    let user = format!("user:{name}");
    if !crate::config::valid_identity_name(&user) {
        return Err(format!(
            "`{user}` cannot be an identity (no spaces, commas or `#`): pass --user NAME"
        ));
    }
    Ok(Identities {
        agent: format!("agent:{client}"),
        user,
    })
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

/// The env file, created 0600 before anything is written into it.
fn write_secret_file(
    path: &Path,
    vars: &std::collections::BTreeMap<String, String>,
) -> Result<(), String> {
    use std::io::Write;
    let mut text = String::from(
        "# Credentials the servers behind mcp-warden need, moved here by `mcp-warden init` so that\n\
         # warden.toml holds none in clear. `${NAME}` in warden.toml refers to them; a variable\n\
         # set in the environment wins. Keep this file 0600 and out of version control.\n",
    );
    for (name, value) in vars {
        text.push_str(&env_file::line(name, value));
    }
    let err = |e: std::io::Error| format!("cannot write `{}`: {e}", path.display());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // An existing file (replaced with --force) keeps its mode: tighten it first.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
        }
    }
    let mut file = options.open(path).map_err(err)?;
    file.write_all(text.as_bytes()).map_err(err)
}

/// Start every upstream at once; those that listed their tools, and those that did not
/// with why.
async fn start_each<'u>(
    config: &Config,
    upstreams: &'u [Upstream],
) -> (Vec<(&'u Upstream, Vec<Value>)>, Vec<(&'u Upstream, String)>) {
    let tries = upstreams.iter().map(|u| async move {
        let listed = match config.upstream(&u.id) {
            Some(c) => crate::upstream::live_tools(c, START_LIMIT).await,
            None => Err(format!("upstream `{}` is missing from the config", u.id)),
        };
        (u, listed)
    });
    let mut started = Vec::new();
    let mut failed = Vec::new();
    for (u, listed) in futures::future::join_all(tries).await {
        match listed {
            Ok(live) => started.push((u, live)),
            Err(why) => failed.push((u, why)),
        }
    }
    (started, failed)
}

/// The one entry that replaces the governed servers in the client's config: this
/// executable, serving `config` over stdio.
fn client_entry(client: &ClientFile, config: &Path) -> Result<Value, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let mut entry = json!({
        "command": exe.display().to_string(),
        "args": ["serve", "--config", config.display().to_string()],
    });
    if client.key != ListKey::McpServers
        && let Some(object) = entry.as_object_mut()
    {
        object.insert("type".into(), json!("stdio"));
    }
    Ok(entry)
}

/// Save the client's file beside itself, then write it with the governed servers
/// replaced by the gateway's entry (servers left out stay as they were). Comments in a
/// VS Code file are not kept: the backup has them.
fn rewrite_client(
    path: &Path,
    client: &ClientFile,
    entry: &Value,
    governed: &[&str],
) -> Result<PathBuf, String> {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "-");
    let backup = path.with_file_name(format!(
        "{}.before-mcp-warden-{stamp}",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    std::fs::copy(path, &backup).map_err(|e| {
        format!(
            "cannot save `{}` to `{}`: {e}",
            path.display(),
            backup.display()
        )
    })?;
    let mut document = client.document.clone();
    let pointer = match client.key {
        ListKey::McpServers => "/mcpServers",
        ListKey::Servers => "/servers",
        ListKey::SettingsMcpServers => "/mcp/servers",
    };
    let list: &mut Map<String, Value> = document
        .pointer_mut(pointer)
        .and_then(Value::as_object_mut)
        .ok_or("the client's server list is gone")?;
    list.retain(|name, _| !governed.contains(&name.as_str()));
    list.insert(ENTRY.into(), entry.clone());
    let text = serde_json::to_string_pretty(&document).map_err(|e| e.to_string())?;
    write(path, &format!("{text}\n"))?;
    Ok(backup)
}

/// The report as the command prints it: what was written (stdout), what was skipped or
/// moved (warnings), and the client's new entry.
pub fn print(report: &Report, options: &Options) {
    for (id, tools) in &report.written {
        println!("  {id}: {tools} tools, manifest tool-manifests/{id}.toml (review every tier)");
    }
    for (name, why) in &report.failed {
        eprintln!(
            "warning: `{name}` did not start and is left out (commented in warden.toml): {why}"
        );
    }
    for (name, why) in &report.skipped {
        eprintln!("warning: `{name}` is left out: {why}");
    }
    if !report.moved.is_empty() {
        eprintln!(
            "warning: moved {} value(s) into secrets.env (0600), referred to as ${{NAME}} in warden.toml: {}\n         keep secrets.env out of version control",
            report.moved.len(),
            report.moved.join(", ")
        );
    }
    println!("wrote {}", report.config.display());
    println!(
        "your approver token, as {} (shown once: keep it where no agent can read it, e.g. a password manager):\n  {}\n  your agent's `act` calls wait until you confirm them on http://127.0.0.1:8788/ (sign in with it)\n  or with `MCP_WARDEN_APPROVER_TOKEN=… mcp-warden approvals --config {} approve ID`",
        report.user,
        report.token,
        report.config.display()
    );
    println!(
        "check it: mcp-warden check --config {}",
        report.config.display()
    );
    let key = match report.list_key {
        ListKey::McpServers => "mcpServers",
        ListKey::Servers | ListKey::SettingsMcpServers => "servers",
    };
    let entry =
        serde_json::to_string_pretty(&json!({ key: { ENTRY: report.entry } })).unwrap_or_default();
    match &report.backup {
        Some(backup) => println!(
            "rewrote {} to use the gateway (the original is saved as {})",
            options.from.display(),
            backup.display()
        ),
        None => println!(
            "in {}, replace the servers above with this one entry (or run init again with --write-client-config):\n{entry}",
            options.from.display()
        ),
    }
}
