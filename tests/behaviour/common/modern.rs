//! Requests of the 2026-07-28 revision sent by hand over Streamable HTTP: the version,
//! client capabilities and client info in each request's `_meta`, the routing headers
//! a client sends, no session.

use serde_json::{Value, json};

/// `_meta` of a 2026-07-28 request from a client declaring `capabilities`.
pub fn meta(capabilities: Value) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": capabilities,
        "io.modelcontextprotocol/clientInfo": {"name": "modern-test", "version": "1"},
    })
}

/// A `tools/call` of `name` with `params` (arguments, and whatever else) and `_meta`.
pub fn call(id: u64, name: &str, mut params: Value, capabilities: Value) -> Value {
    params["name"] = json!(name);
    params["_meta"] = meta(capabilities);
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
}

/// What came back: the status, the session id if one was given, and the JSON-RPC message
/// (the answer's JSON, or the first `data:` of its event stream).
pub struct Answer {
    pub status: u16,
    pub session: Option<String>,
    /// The answer (the last message).
    pub message: Value,
    /// Every message, in order (notifications first).
    pub messages: Vec<Value>,
}

/// POST `body` with the headers a 2026-07-28 client sends (`Mcp-Method`, and `Mcp-Name`
/// for a tool call), then `extra`, as `bearer` when given.
pub async fn post(url: &str, body: &Value, bearer: Option<&str>, extra: &[(&str, &str)]) -> Answer {
    let method = body["method"].as_str().unwrap_or_default().to_string();
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", &method);
    if method == "tools/call"
        && !extra
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("mcp-name"))
    {
        request = request.header(
            "mcp-name",
            body["params"]["name"].as_str().unwrap_or_default(),
        );
    }
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    for (k, v) in extra {
        request = request.header(*k, *v);
    }
    let answer = request.body(body.to_string()).send().await.unwrap();
    let status = answer.status().as_u16();
    let session = answer
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    let text = answer.text().await.unwrap();
    let mut messages: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("not JSON-RPC ({e}): {text}")))
        .collect();
    if messages.is_empty() {
        let whole = serde_json::from_str(&text);
        messages.push(whole.unwrap_or_else(|e| panic!("not JSON-RPC ({e}): {text}")));
    }
    let message = messages.last().cloned().unwrap_or_default();
    Answer {
        status,
        session,
        message,
        messages,
    }
}
