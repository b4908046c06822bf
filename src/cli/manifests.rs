//! `mcp-warden manifest init|pin`: tooling for tool owners. `init` connects to a
//! configured upstream and writes a manifest skeleton for its live tools; `pin` shows how
//! the live tools differ from their pins and, with `--yes`, writes the new pins into the
//! manifest (everything else in the file stays as it is).

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use serde_json::Value;

use crate::catalog::PinStore;
use crate::config::Config;
use crate::digest;
use crate::manifest::skeleton;

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Write a manifest skeleton for a configured upstream's live tools.
    Init {
        #[arg(long)]
        upstream: String,
        /// Where to write it; default: `<manifests>/<upstream>.toml`.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Show which tools changed since they were pinned; with --yes, write the new pins.
    Pin {
        #[arg(long)]
        upstream: String,
        /// Only this tool.
        #[arg(long)]
        tool: Option<String>,
        /// Write the pins (after you reviewed the changes shown).
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(command: ManifestCommand, config: Config) -> Result<(), String> {
    match command {
        ManifestCommand::Init {
            upstream,
            output,
            force,
        } => {
            let live = live_tools(&config, &upstream).await?;
            let path =
                output.unwrap_or_else(|| config.live.manifests.join(format!("{upstream}.toml")));
            if path.exists() && !force {
                return Err(format!(
                    "`{}` exists: pass --force to replace it, or --output elsewhere",
                    path.display()
                ));
            }
            std::fs::write(&path, skeleton::skeleton(&upstream, &live))
                .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
            let pins = PinStore::new(&config.boot.state_dir);
            live.iter().for_each(|d| pins.remember(d));
            println!(
                "wrote {} ({} tools): review every tier, then ship it",
                path.display(),
                live.len()
            );
            Ok(())
        }
        ManifestCommand::Pin {
            upstream,
            tool,
            yes,
        } => pin(&config, &upstream, tool.as_deref(), yes).await,
    }
}

async fn pin(config: &Config, upstream: &str, only: Option<&str>, yes: bool) -> Result<(), String> {
    let (manifests, _, _) = crate::gateway::load_rules(config)
        .await
        .map_err(|p| crate::problem::render(&p))?;
    let manifest = manifests
        .get(upstream)
        .ok_or_else(|| format!("no manifest for upstream `{upstream}`: run `mcp-warden manifest init --upstream {upstream}`"))?;
    let file = manifest.file.clone();
    let live = live_tools(config, upstream).await?;
    let mut text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
    let pins = PinStore::new(&config.boot.state_dir);
    let mut changed = 0;
    for (name, entry) in &manifest.tools {
        if only.is_some_and(|t| t != name) {
            continue;
        }
        let Some(def) = live
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some(name))
        else {
            println!("{name}: not offered by `{upstream}` any more (left as it is)");
            continue;
        };
        let pin = digest::tool_pin(def);
        if entry.pin.as_deref() == Some(pin.as_str()) {
            continue;
        }
        changed += 1;
        println!(
            "{name}: {} -> {pin}",
            entry.pin.as_deref().unwrap_or("(not pinned)")
        );
        show_change(entry.pin.as_deref().and_then(|p| pins.recall(p)), def);
        if yes {
            pins.remember(def);
        }
        text = skeleton::repin(&text, name, &pin)
            .ok_or_else(|| format!("cannot find `[tools.{name}]` in `{}`", file.display()))?;
    }
    if only.is_some_and(|t| !manifest.tools.contains_key(t)) {
        return Err(format!(
            "the manifest lists no tool `{}`",
            only.unwrap_or_default()
        ));
    }
    match (changed, yes) {
        (0, _) => println!("every pin in {} matches the live tools", file.display()),
        (_, false) => {
            return Err(format!(
                "{changed} pin(s) would change: review the definitions above, then re-run with --yes"
            ));
        }
        (_, true) => {
            std::fs::write(&file, text)
                .map_err(|e| format!("cannot write `{}`: {e}", file.display()))?;
            println!(
                "wrote {changed} pin(s) to {}; run `mcp-warden reload` (or send the gateway SIGHUP) to use them",
                file.display()
            );
        }
    }
    Ok(())
}

/// What changed, field by field, when the pinned definition is known; else the whole
/// live definition.
fn show_change(pinned: Option<Value>, live: &Value) {
    // Escaped line by line: the new text comes from the upstream and may try to rewrite
    // the owner's terminal.
    let indent = |v: Option<&Value>| {
        let text = v
            .map(|v| serde_json::to_string_pretty(v).unwrap_or_default())
            .unwrap_or_else(|| "(absent)".into());
        let lines: Vec<String> = text.lines().map(crate::escape::visible).collect();
        lines.join("\n    ")
    };
    let Some(pinned) = pinned else {
        println!("  live definition now: {}", indent(Some(live)));
        return;
    };
    let fields = digest::changed_fields(&pinned, live);
    println!("  changed: {}", fields.join(", "));
    for field in fields {
        println!("  {field} was: {}", indent(pinned.get(field)));
        println!("  {field} now: {}", indent(live.get(field)));
    }
}

/// The live tool definitions of one configured upstream.
async fn live_tools(config: &Config, id: &str) -> Result<Vec<Value>, String> {
    let upstream = config
        .upstream(id)
        .ok_or_else(|| format!("no upstream `{id}` in {}", config.source.display()))?;
    crate::upstream::live_tools(upstream, Duration::from_secs(60)).await
}
