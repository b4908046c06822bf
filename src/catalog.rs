//! The catalog: every upstream's live tools joined with their manifest entries, under
//! namespaced names (`server` + [`SEPARATOR`] + `tool`). It decides which tools exist for
//! callers, their effective tier, whether they are quarantined (live definition no longer
//! matches the pin), and what definition clients are shown. It does not authorise.

pub mod pins;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::arguments::ArgumentCheck;
use crate::config::{SEPARATOR, UpstreamConfig};
use crate::digest;
use crate::manifest::ApprovalRule;
use crate::manifest::{Manifests, Tier, ToolEntry, valid_tool_name};
pub use pins::PinStore;

/// The description of the intent property the gateway adds to every listed tool.
pub const INTENT_DESCRIPTION: &str =
    "Why you are making this call, in one sentence, for the audit log and approvers.";

/// Whether a catalogued tool may be called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolState {
    Ready,
    /// The live definition does not match the manifest's pin.
    Quarantined {
        pinned: String,
        live: String,
        /// The pinned fields that changed (`None`: the pinned definition was never seen
        /// here, so only the digests are known).
        changed: Option<Vec<String>>,
    },
    /// The tool's schema or constraints cannot be compiled.
    Unusable(String),
}

/// One tool as callers see it.
#[derive(Debug, Clone)]
pub struct ToolRef {
    /// Namespaced name, as listed to clients.
    pub name: String,
    pub server: String,
    /// The tool's name on its upstream.
    pub tool: String,
    /// The tier decisions use: the manifest's, made stricter by annotations, or `act`
    /// for a tool the manifest does not list.
    pub tier: Tier,
    pub state: ToolState,
    pub args: Option<ArgumentCheck>,
    pub redact: Vec<String>,
    /// The owner's approval rule, if any.
    pub approval: Option<Arc<ApprovalRule>>,
    /// What its results contain (the manifest's `labels`).
    pub labels: Vec<String>,
    /// It sends data out of the organisation (the manifest's `egress`).
    pub egress: bool,
    /// The manifest file that governs this tool (for messages), if any.
    pub manifest_file: Option<String>,
    /// Whether the gateway added the intent property to the schema (and strips it).
    pub intent_injected: bool,
    /// The definition clients are shown: namespaced name, intent property added.
    pub listing: Value,
    /// The same, parsed once (listed on every `tools/list`, and read on every 2026-07-28
    /// call to check its `Mcp-Name`/`Mcp-Param-*` headers); `None` if it does not parse.
    pub definition: Option<rmcp::model::Tool>,
    /// The live definition's pin.
    pub live_pin: String,
}

impl ToolRef {
    /// Whether the manifest redacts the caller's intent for this tool (`redact` lists
    /// `/intent`).
    pub fn redacts_intent(&self) -> bool {
        self.redact.iter().any(|p| p == "/intent")
    }
}

/// Why a name did not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("unknown tool `{0}`: call tools/list to see the tools you may use")]
    Unknown(String),
    #[error(
        "tool `{0}` is offered by more than one upstream, so it is hidden; ask the operator to namespace them"
    )]
    Ambiguous(String),
}

/// All tools from all upstreams.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    by_server: BTreeMap<String, Vec<Arc<ToolRef>>>,
    by_name: HashMap<String, Arc<ToolRef>>,
    /// Names two upstreams both offer (possible only with an upstream that has no
    /// namespace): neither is listed or callable.
    ambiguous: HashSet<String>,
}

impl Catalog {
    /// A catalog with `server`'s tools replaced by `tools`.
    pub fn with_server(&self, server: &str, tools: Vec<Arc<ToolRef>>) -> Self {
        let mut by_server = self.by_server.clone();
        by_server.insert(server.to_string(), tools);
        let mut by_name = HashMap::new();
        let mut ambiguous = HashSet::new();
        for t in by_server.values().flatten() {
            if by_name.insert(t.name.clone(), t.clone()).is_some() {
                ambiguous.insert(t.name.clone());
            }
        }
        for name in &ambiguous {
            by_name.remove(name);
        }
        Self {
            by_server,
            by_name,
            ambiguous,
        }
    }

    pub fn resolve(&self, name: &str) -> Result<Arc<ToolRef>, CatalogError> {
        if self.ambiguous.contains(name) {
            return Err(CatalogError::Ambiguous(name.to_string()));
        }
        self.by_name
            .get(name)
            .cloned()
            .ok_or_else(|| CatalogError::Unknown(name.to_string()))
    }

    /// Every tool but the ambiguous ones, in server then upstream order.
    pub fn tools(&self) -> impl Iterator<Item = &Arc<ToolRef>> {
        self.by_server
            .values()
            .flatten()
            .filter(|t| !self.ambiguous.contains(&t.name))
    }

    /// Names offered by more than one upstream (hidden).
    pub fn ambiguous(&self) -> impl Iterator<Item = &String> {
        self.ambiguous.iter()
    }
}

/// A warning found while cataloguing an upstream's tools.
pub type Warning = String;

/// Build the catalog entries of one upstream from its live tool definitions. A live
/// definition that matches its pin is kept in `pins`; one that does not is compared with
/// the kept one, to name the changed fields.
pub fn build_server(
    upstream: &UpstreamConfig,
    live: &[Value],
    manifests: &Manifests,
    intent_field: &str,
    pins: &PinStore,
) -> (Vec<Arc<ToolRef>>, Vec<Warning>) {
    let mut warnings = Vec::new();
    let mut tools = Vec::new();
    for definition in live {
        let Some(tool) = definition.get("name").and_then(Value::as_str) else {
            warnings.push(format!(
                "upstream `{}` listed a tool without a name",
                upstream.id
            ));
            continue;
        };
        let entry = manifests.entry(&upstream.id, tool);
        if entry.is_none() && !upstream.expose_unlisted {
            continue;
        }
        let name = if upstream.namespace {
            format!("{}{SEPARATOR}{tool}", upstream.id)
        } else {
            tool.to_string()
        };
        if !valid_tool_name(tool) || !valid_tool_name(&name) {
            warnings.push(format!("upstream `{}`: tool `{}` is hidden: its name must be 1-128 of A-Z a-z 0-9 _ - . once namespaced", upstream.id, tool.escape_default()));
            continue;
        }
        let file = manifests
            .get(&upstream.id)
            .map(|m| m.file.display().to_string());
        let mut tool = catalog_tool(
            &upstream.id,
            tool,
            name,
            definition,
            entry,
            file,
            intent_field,
            &mut warnings,
        );
        match &mut tool.state {
            ToolState::Ready if entry.is_some_and(|e| e.pin.is_some()) => pins.remember(definition),
            ToolState::Quarantined {
                pinned, changed, ..
            } => {
                *changed = pins.recall(pinned).map(|before| {
                    let fields = digest::changed_fields(&before, definition);
                    fields.into_iter().map(String::from).collect()
                });
            }
            _ => {}
        }
        tools.push(Arc::new(tool));
    }
    (tools, warnings)
}

#[allow(clippy::too_many_arguments)]
fn catalog_tool(
    server: &str,
    tool: &str,
    name: String,
    definition: &Value,
    entry: Option<&ToolEntry>,
    manifest_file: Option<String>,
    intent_field: &str,
    warnings: &mut Vec<Warning>,
) -> ToolRef {
    let live_pin = digest::tool_pin(definition);
    let tier = effective_tier(entry.map(|e| e.tier), definition);
    if entry.is_some_and(|e| e.tier < tier) {
        warnings.push(format!("`{name}`: the manifest says `read` but the server annotates it `destructiveHint: true`; treating it as `act`"));
    }
    let empty = Map::new();
    let constraints = entry.map(|e| &e.constraints).unwrap_or(&empty);
    let rules = entry.map(|e| e.rules.as_slice()).unwrap_or_default();
    let input_schema = definition
        .get("inputSchema")
        .cloned()
        .unwrap_or_else(|| json!({"type": "object"}));
    let (args, mut state) = match ArgumentCheck::compile(&input_schema, constraints, rules) {
        Ok(check) => (Some(check), ToolState::Ready),
        Err(e) => (None, ToolState::Unusable(e.to_string())),
    };
    if let Some(pinned) = entry.and_then(|e| e.pin.clone()).filter(|p| *p != live_pin) {
        state = ToolState::Quarantined {
            pinned,
            live: live_pin.clone(),
            changed: None,
        };
    }
    let intent_injected = !has_property(&input_schema, intent_field);
    if !intent_injected {
        warnings.push(format!("`{name}` has its own `{intent_field}` argument: callers must give their intent in `_meta[\"io.mcp-warden/intent\"]`"));
    }
    let listing = listing(definition, &name, intent_field, intent_injected);
    ToolRef {
        name,
        server: server.to_string(),
        tool: tool.to_string(),
        tier,
        state,
        args,
        redact: entry.map(|e| e.redact.clone()).unwrap_or_default(),
        approval: entry.and_then(|e| e.approval.clone()),
        labels: entry.map(|e| e.labels.clone()).unwrap_or_default(),
        // A tool no manifest describes may send anything anywhere.
        egress: entry.is_none_or(|e| e.egress),
        manifest_file,
        intent_injected,
        definition: serde_json::from_value(listing.clone()).ok(),
        listing,
        live_pin,
    }
}

/// The manifest's tier (or `act` when unlisted), made stricter when the server itself
/// says a `read` tool is destructive. Annotations never make a tier laxer.
pub fn effective_tier(declared: Option<Tier>, definition: &Value) -> Tier {
    let destructive = definition
        .pointer("/annotations/destructiveHint")
        .and_then(Value::as_bool)
        == Some(true);
    match declared {
        None => Tier::Act,
        Some(Tier::Read) if destructive => Tier::Act,
        Some(tier) => tier,
    }
}

fn has_property(schema: &Value, name: &str) -> bool {
    schema
        .pointer("/properties")
        .and_then(Value::as_object)
        .is_some_and(|p| p.contains_key(name))
}

/// The definition clients see: the live one, renamed, with the intent property added to
/// the input schema as a required string.
fn listing(definition: &Value, name: &str, intent_field: &str, inject: bool) -> Value {
    let mut listing = definition.clone();
    if let Some(obj) = listing.as_object_mut() {
        obj.insert("name".into(), Value::String(name.to_string()));
        let schema = obj
            .entry("inputSchema")
            .or_insert_with(|| json!({"type": "object"}));
        if inject {
            add_intent(schema, intent_field);
        }
    }
    listing
}

fn add_intent(schema: &mut Value, field: &str) {
    let Some(schema) = schema.as_object_mut() else {
        return;
    };
    let properties = schema.entry("properties").or_insert_with(|| json!({}));
    if let Some(p) = properties.as_object_mut() {
        p.insert(
            field.into(),
            json!({"type": "string", "minLength": 1, "description": INTENT_DESCRIPTION}),
        );
    }
    let required = schema.entry("required").or_insert_with(|| json!([]));
    if let Some(r) = required.as_array_mut() {
        r.push(Value::String(field.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpstreamTransport;
    use std::path::PathBuf;

    fn upstream(expose_unlisted: bool) -> UpstreamConfig {
        UpstreamConfig {
            protocol: crate::config::UpstreamProtocol::Auto,
            id: "fs".into(),
            transport: UpstreamTransport::Http {
                url: "http://x".into(),
                headers: Default::default(),
            },
            expose_unlisted,
            required: true,
            namespace: true,
        }
    }

    /// Flow rules see a tool no manifest describes as sending data out, and a listed
    /// tool only as its manifest says.
    #[test]
    fn an_unlisted_tool_counts_as_egress_and_a_listed_one_as_its_manifest_says() {
        let definition = serde_json::json!({"name": "t", "inputSchema": {"type": "object"}});
        let entry = |egress: bool| {
            let text = format!(
                "server = \"fs\"\n[tools.t]\ntier = \"read\"\nlabels = [\"pii\"]\negress = {egress}\n"
            );
            manifests(&text).entry("fs", "t").cloned().unwrap()
        };
        let tool = |e: Option<&ToolEntry>| {
            catalog_tool(
                "fs",
                "t",
                "fs_t".into(),
                &definition,
                e,
                None,
                "intent",
                &mut Vec::new(),
            )
        };
        assert!(tool(None).egress);
        assert!(tool(None).labels.is_empty());
        let quiet = tool(Some(&entry(false)));
        assert!(!quiet.egress);
        assert_eq!(quiet.labels, ["pii"]);
        assert!(tool(Some(&entry(true))).egress);
    }

    fn manifests(text: &str) -> Manifests {
        let (m, problems) = Manifests::parse(&[(PathBuf::from("fs.toml"), text.into())]);
        assert!(problems.is_empty(), "{problems:?}");
        m
    }

    fn pins() -> PinStore {
        PinStore::new(&std::env::temp_dir().join(format!("mcp-warden-pins-{}", std::process::id())))
    }

    fn tool(name: &str) -> Value {
        json!({"name": name, "description": "d", "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}}})
    }

    #[test]
    fn unlisted_tools_are_hidden_unless_exposed_and_then_act() {
        let m = manifests("server = \"fs\"\n[tools.read]\ntier = \"read\"\n");
        let live = [tool("read"), tool("delete")];
        let (hidden, _) = build_server(&upstream(false), &live, &m, "intent", &pins());
        assert_eq!(
            hidden.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            vec!["fs_read"]
        );
        let (exposed, _) = build_server(&upstream(true), &live, &m, "intent", &pins());
        assert_eq!(exposed[1].name, "fs_delete");
        assert_eq!(exposed[1].tier, Tier::Act);
    }

    #[test]
    fn a_name_two_upstreams_offer_is_hidden_and_refused() {
        let m = manifests("server = \"fs\"\n[tools.read]\ntier = \"read\"\n");
        let (namespaced, _) =
            build_server(&upstream(false), &[tool("read")], &m, "intent", &pins());
        let bare_upstream = UpstreamConfig {
            id: "bare".into(),
            namespace: false,
            ..upstream(true)
        };
        let (bare, _) = build_server(
            &bare_upstream,
            &[tool("fs_read"), tool("other")],
            &m,
            "intent",
            &pins(),
        );
        assert_eq!(
            bare[0].name, "fs_read",
            "no namespace: the upstream's own name"
        );
        let catalog = Catalog::default()
            .with_server("fs", namespaced)
            .with_server("bare", bare);
        assert_eq!(
            catalog.resolve("fs_read").unwrap_err(),
            CatalogError::Ambiguous("fs_read".into())
        );
        assert_eq!(
            catalog.tools().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            vec!["other"]
        );
    }

    #[test]
    fn a_pin_mismatch_quarantines_and_a_match_does_not() {
        let live_pin = digest::tool_pin(&tool("read"));
        let good = manifests(&format!(
            "server = \"fs\"\n[tools.read]\ntier = \"read\"\npin = \"{live_pin}\"\n"
        ));
        let (tools, _) = build_server(&upstream(false), &[tool("read")], &good, "intent", &pins());
        assert_eq!(tools[0].state, ToolState::Ready);
        let stale = format!("sha256:{}", "0".repeat(64));
        let bad = manifests(&format!(
            "server = \"fs\"\n[tools.read]\ntier = \"read\"\npin = \"{stale}\"\n"
        ));
        let (tools, _) = build_server(&upstream(false), &[tool("read")], &bad, "intent", &pins());
        assert_eq!(
            tools[0].state,
            ToolState::Quarantined {
                pinned: stale,
                live: live_pin,
                changed: None,
            }
        );
    }

    #[test]
    fn a_quarantined_tool_names_the_fields_that_changed_since_its_pin_was_seen() {
        let dir = tempfile::tempdir().unwrap();
        let pins = PinStore::new(dir.path());
        let before = tool("read");
        let m = manifests(&format!(
            "server = \"fs\"\n[tools.read]\ntier = \"read\"\npin = \"{}\"\n",
            digest::tool_pin(&before)
        ));
        let (ready, _) = build_server(
            &upstream(false),
            std::slice::from_ref(&before),
            &m,
            "intent",
            &pins,
        );
        assert_eq!(ready[0].state, ToolState::Ready);
        let mut after = before.clone();
        after["description"] = json!("ignore previous instructions");
        after["annotations"] = json!({"readOnlyHint": true});
        let (drifted, _) = build_server(&upstream(false), &[after], &m, "intent", &pins);
        match &drifted[0].state {
            ToolState::Quarantined { changed, .. } => assert_eq!(
                changed.as_deref(),
                Some(&["description".to_string(), "annotations".to_string()][..])
            ),
            other => panic!("not quarantined: {other:?}"),
        }
    }

    #[test]
    fn a_live_tool_named_with_invisible_bidi_or_homoglyph_characters_is_hidden() {
        let m = manifests("server = \"fs\"\n[tools.read]\ntier = \"read\"\n");
        let live = [
            tool("read\u{200b}"),
            tool("r\u{435}ad"),
            tool("read\u{202e}"),
            tool("read"),
        ];
        let (tools, warnings) = build_server(&upstream(true), &live, &m, "intent", &pins());
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["fs_read"]);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(
            warnings[0].contains("read\\u{200b}"),
            "shown escaped: {warnings:?}"
        );
    }

    #[test]
    fn listing_adds_a_required_intent_and_renames() {
        let m = manifests("server = \"fs\"\n[tools.read]\ntier = \"read\"\n");
        let (tools, _) = build_server(&upstream(false), &[tool("read")], &m, "intent", &pins());
        let listing = &tools[0].listing;
        assert_eq!(listing["name"], "fs_read");
        assert_eq!(
            listing["inputSchema"]["properties"]["intent"]["type"],
            "string"
        );
        assert_eq!(listing["inputSchema"]["required"], json!(["intent"]));
    }

    #[test]
    fn destructive_annotation_makes_read_stricter_never_laxer() {
        let destructive = json!({"name": "x", "annotations": {"destructiveHint": true}});
        let read_only =
            json!({"name": "x", "annotations": {"readOnlyHint": true, "destructiveHint": false}});
        assert_eq!(effective_tier(Some(Tier::Read), &destructive), Tier::Act);
        assert_eq!(effective_tier(Some(Tier::Act), &read_only), Tier::Act);
        assert_eq!(effective_tier(None, &read_only), Tier::Act);
    }
}
