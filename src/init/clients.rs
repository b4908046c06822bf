//! Reading the MCP server list of the clients people use: Claude Desktop's
//! `claude_desktop_config.json`, Claude Code's `.mcp.json` / `~/.claude.json` and
//! Cursor's `mcp.json` (all under `mcpServers`), VS Code's `mcp.json` (under `servers`,
//! comments and trailing commas allowed) and its settings (`mcp.servers`). Each entry
//! becomes a stdio or HTTP server with its values in the gateway's `${NAME}` syntax, or a
//! reason it cannot be put behind the gateway. It reads; it writes nothing.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

/// Where in the file the server list is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKey {
    /// `mcpServers` (Claude Desktop, Claude Code, Cursor and most others).
    McpServers,
    /// `servers` (VS Code's `mcp.json`).
    Servers,
    /// `mcp.servers` (VS Code's `settings.json`).
    SettingsMcpServers,
}

/// A client's config file as read.
#[derive(Debug)]
pub struct ClientFile {
    /// A short name for the client, for the agent identity (`claude-desktop`, `vscode`…).
    pub client: &'static str,
    pub key: ListKey,
    pub servers: Vec<Server>,
    /// The whole document, to rewrite the server list in it.
    pub document: Value,
}

/// One entry of the server list.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// The entry's name in the client's file.
    pub name: String,
    pub transport: Transport,
    /// `${NAME:-default}` defaults found in its values: written to the env file, where
    /// the environment still wins over them.
    pub defaults: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<String>,
    },
    Http {
        url: String,
        headers: BTreeMap<String, String>,
    },
    /// Not put behind the gateway, and why.
    Skipped(String),
}

/// Read a client's config file.
pub fn read(path: &Path) -> Result<ClientFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let document: Value = serde_json::from_str(&strip_jsonc(&text))
        .map_err(|e| format!("`{}` is not JSON: {e}", path.display()))?;
    let (key, list) = server_list(&document).ok_or_else(|| {
        format!(
            "`{}` has no MCP server list: expected `mcpServers` (Claude Desktop, Claude Code, Cursor) or `servers` (VS Code)",
            path.display()
        )
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let servers = list
        .iter()
        .map(|(name, entry)| server(name, entry, base))
        .collect();
    Ok(ClientFile {
        client: client_name(path, key),
        key,
        servers,
        document,
    })
}

fn server_list(document: &Value) -> Option<(ListKey, &Map<String, Value>)> {
    [
        ("/mcpServers", ListKey::McpServers),
        ("/servers", ListKey::Servers),
        ("/mcp/servers", ListKey::SettingsMcpServers),
    ]
    .into_iter()
    .find_map(|(at, key)| Some((key, document.pointer(at)?.as_object()?)))
}

/// The client a file belongs to, from its name and place.
fn client_name(path: &Path, key: ListKey) -> &'static str {
    let text = path.to_string_lossy().to_lowercase();
    match key {
        ListKey::Servers | ListKey::SettingsMcpServers => "vscode",
        ListKey::McpServers if text.contains("claude_desktop") => "claude-desktop",
        ListKey::McpServers if text.contains(".cursor") => "cursor",
        ListKey::McpServers if text.ends_with(".mcp.json") || text.ends_with(".claude.json") => {
            "claude-code"
        }
        ListKey::McpServers => "client",
    }
}

/// One entry: its transport, with every value turned into the gateway's syntax.
fn server(name: &str, entry: &Value, base: &Path) -> Server {
    let mut defaults = BTreeMap::new();
    let transport = transport(entry, base, &mut defaults).unwrap_or_else(Transport::Skipped);
    Server {
        name: name.to_string(),
        transport,
        defaults,
    }
}

fn transport(
    entry: &Value,
    base: &Path,
    defaults: &mut BTreeMap<String, String>,
) -> Result<Transport, String> {
    let entry = entry.as_object().ok_or("the entry is not an object")?;
    if entry.get("disabled").and_then(Value::as_bool) == Some(true) {
        return Err("disabled in the client".into());
    }
    let string = |key: &str| entry.get(key).and_then(Value::as_str);
    let kind = string("type").or(string("transport"));
    match (kind, string("command"), string("url").or(string("serverUrl"))) {
        (Some("sse"), _, _) => Err("uses the old HTTP+SSE transport, which the gateway does not speak: use the server's Streamable HTTP endpoint, or run it over stdio".into()),
        (Some("ws" | "websocket"), _, _) => Err("uses a WebSocket transport, which the gateway does not speak".into()),
        (None | Some("stdio"), Some(command), _) => stdio(entry, command, base, defaults),
        (None | Some("http" | "streamable-http" | "streamableHttp"), None, Some(url)) => {
            Ok(Transport::Http {
                url: value(url, defaults)?,
                headers: strings(entry.get("headers"), "headers", defaults)?,
            })
        }
        (Some(other), _, _) if !matches!(other, "stdio" | "http" | "streamable-http" | "streamableHttp") => {
            Err(format!("has transport type `{other}`, which the gateway does not know"))
        }
        _ => Err("has neither a `command` nor a `url`".into()),
    }
}

fn stdio(
    entry: &Map<String, Value>,
    command: &str,
    base: &Path,
    defaults: &mut BTreeMap<String, String>,
) -> Result<Transport, String> {
    if entry.contains_key("envFile") {
        return Err("reads its variables from an `envFile`, which init does not follow: copy them into `env` and run init again".into());
    }
    let args = match entry.get("args") {
        None => Vec::new(),
        Some(Value::Array(args)) => args
            .iter()
            .map(|a| a.as_str().ok_or("an argument in `args` is not a string"))
            .map(|a| a.map_err(str::to_string).and_then(|a| value(a, defaults)))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("`args` is not a list".into()),
    };
    let cwd = match entry.get("cwd").and_then(Value::as_str) {
        // A relative directory is taken from the client's file, where it was written.
        Some(dir) => Some(base.join(value(dir, defaults)?).display().to_string()),
        None => None,
    };
    Ok(Transport::Stdio {
        command: value(command, defaults)?,
        args,
        env: strings(entry.get("env"), "env", defaults)?,
        cwd,
    })
}

/// A table of strings (`env`, `headers`) in the gateway's syntax.
fn strings(
    table: Option<&Value>,
    key: &str,
    defaults: &mut BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let Some(table) = table else {
        return Ok(BTreeMap::new());
    };
    let table = table
        .as_object()
        .ok_or_else(|| format!("`{key}` is not an object"))?;
    table
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), value(s, defaults)?)),
            Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
            _ => Err(format!("`{key}.{k}` is not a string")),
        })
        .collect()
}

/// A value in the gateway's syntax: `${env:NAME}` (VS Code, Cursor) becomes `${NAME}`,
/// `${NAME:-default}` (Claude Code) becomes `${NAME}` with its default kept aside,
/// `${userHome}` the home directory; what only the client can fill in
/// (`${input:…}`, `${workspaceFolder}`) is a reason to skip the server.
fn value(text: &str, defaults: &mut BTreeMap<String, String>) -> Result<String, String> {
    crate::config::substitute(text, |inner| reference(inner, defaults))
}

fn reference(inner: &str, defaults: &mut BTreeMap<String, String>) -> Result<String, String> {
    let inner = inner.strip_prefix("env:").unwrap_or(inner);
    let (name, default) = match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner, None),
    };
    if matches!(name, "userHome" | "HOME")
        && let Some(home) = std::env::var_os("HOME")
    {
        return Ok(home.to_string_lossy().into_owned());
    }
    if !crate::config::env_file::valid_name(name) || EDITOR_VARIABLES.contains(&name) {
        return Err(format!(
            "uses `${{{inner}}}`, which only the client can fill in: replace it with a value or `${{NAME}}` and run init again"
        ));
    }
    if let Some(default) = default {
        defaults.insert(name.to_string(), default.to_string());
    }
    Ok(format!("${{{name}}}"))
}

/// The editor's own variables (VS Code, Cursor): only the editor knows their values.
const EDITOR_VARIABLES: &[&str] = &[
    "workspaceFolder",
    "workspaceFolderBasename",
    "workspaceRoot",
    "file",
    "fileWorkspaceFolder",
    "relativeFile",
    "relativeFileDirname",
    "fileBasename",
    "fileBasenameNoExtension",
    "fileExtname",
    "fileDirname",
    "fileDirnameBasename",
    "cwd",
    "lineNumber",
    "selectedText",
    "execPath",
    "pathSeparator",
    "extensionInstallFolder",
];

/// JSON with comments (`//`, `/* */`) and trailing commas, as VS Code writes it, made
/// plain JSON; strings are left alone.
pub fn strip_jsonc(text: &str) -> String {
    drop_trailing_commas(&strip_comments(text))
}

/// Calls `each` with every character outside strings (and whether it is), in order.
fn scan(
    text: &str,
    mut each: impl FnMut(char, bool, &mut std::iter::Peekable<std::str::Chars<'_>>),
) {
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    let mut escaped = false;
    while let Some(c) = chars.next() {
        let was_in_string = in_string || c == '"';
        match (in_string, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => in_string = !in_string,
            _ => {}
        }
        each(c, !was_in_string, &mut chars);
    }
}

fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    scan(text, |c, outside, chars| match (outside, c) {
        (true, '/') if chars.peek() == Some(&'/') => {
            while chars.next_if(|n| *n != '\n').is_some() {}
        }
        (true, '/') if chars.peek() == Some(&'*') => {
            chars.next();
            let mut last = ' ';
            for n in chars.by_ref() {
                if last == '*' && n == '/' {
                    break;
                }
                last = n;
            }
            out.push(' ');
        }
        _ => out.push(c),
    });
    out
}

fn drop_trailing_commas(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    scan(text, |c, outside, chars| {
        let closes = || {
            let mut ahead = chars.clone();
            while ahead.next_if(|n| n.is_whitespace()).is_some() {}
            matches!(ahead.peek(), Some('}' | ']'))
        };
        if !(outside && c == ',' && closes()) {
            out.push(c);
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(json: &str, file: &str) -> ClientFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file);
        std::fs::write(&path, json).unwrap();
        read(&path).unwrap()
    }

    #[test]
    fn vs_code_comments_and_trailing_commas_are_read_and_strings_kept() {
        let text = "{\n // a comment\n \"servers\": { /* block */ \"a\": {\"command\": \"x\", \"args\": [\"//not\", \"/*no*/\", \"q\\\"//\",],},},\n}";
        let file = servers(text, "mcp.json");
        assert_eq!((file.client, file.key), ("vscode", ListKey::Servers));
        let Transport::Stdio { args, .. } = &file.servers[0].transport else {
            panic!("{file:?}")
        };
        assert_eq!(args, &["//not", "/*no*/", "q\"//"]);
    }

    #[test]
    fn references_become_the_gateways_and_what_only_the_client_knows_is_skipped() {
        let text = r#"{"mcpServers": {
            "gh": {"command": "npx", "env": {"T": "${env:GH_TOKEN}", "U": "${USER_X:-bob}"}},
            "vs": {"command": "x", "args": ["${input:key}"]},
            "ws": {"command": "x", "cwd": "${workspaceFolder}"},
            "old": {"type": "sse", "url": "http://h/sse"},
            "off": {"command": "x", "disabled": true},
            "web": {"url": "https://h/mcp", "headers": {"Authorization": "Bearer abc"}},
            "here": {"command": "./run", "cwd": "tools/srv", "args": ["--port", 8]}
        }}"#;
        let file = servers(text, "claude_desktop_config.json");
        assert_eq!(file.client, "claude-desktop");
        let by = |n: &str| file.servers.iter().find(|s| s.name == n).unwrap();
        let Transport::Stdio { env, .. } = &by("gh").transport else {
            panic!()
        };
        assert_eq!(env["T"], "${GH_TOKEN}");
        assert_eq!(env["U"], "${USER_X}");
        assert_eq!(by("gh").defaults["USER_X"], "bob");
        for skipped in ["vs", "ws", "old", "off"] {
            assert!(
                matches!(by(skipped).transport, Transport::Skipped(_)),
                "{skipped}"
            );
        }
        assert!(
            matches!(&by("web").transport, Transport::Http { headers, .. } if headers["Authorization"] == "Bearer abc")
        );
    }

    #[test]
    fn a_relative_working_directory_is_taken_from_the_clients_file() {
        let file = servers(
            r#"{"mcpServers": {"s": {"command": "./run", "cwd": "tools/srv"}}}"#,
            "claude_desktop_config.json",
        );
        let Transport::Stdio { cwd: Some(cwd), .. } = &file.servers[0].transport else {
            panic!("{file:?}")
        };
        assert!(
            cwd.ends_with("tools/srv") && Path::new(cwd).is_absolute(),
            "{cwd}"
        );
    }

    #[test]
    fn a_file_without_a_server_list_says_what_it_expected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        std::fs::write(&path, "{\"theme\": \"dark\"}").unwrap();
        assert!(read(&path).unwrap_err().contains("`mcpServers`"));
    }
}
