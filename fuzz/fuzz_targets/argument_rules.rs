//! Path and URL rules against any value a caller sends: judged, never a panic. The first
//! byte picks the rule; the rest is the value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_warden::rules::ArgRule;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Some((pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(value) = std::str::from_utf8(rest) else {
        return;
    };
    let table = match pick % 3 {
        0 => json!({"path": {"within": ["/srv/data", "/tmp/x"]}}),
        1 => json!({"url": {"deny": ["private", "loopback", "link-local", "metadata"]}}),
        _ => json!({"url": {"schemes": ["https"], "hosts": ["*.example.com", "10.0.0.1"]}}),
    };
    let Value::Object(table) = table else { return };
    let Ok(Some(rule)) = ArgRule::parse(&table) else {
        return;
    };
    let _ = rule.check(&Value::String(value.to_string()));
    let _ = rule.check(&json!([value, value]));
});
