//! `mcp-warden serve` as operators run it: `[listen] metrics` serves `/metrics`,
//! `/readyz` and `/healthz` on a listener of its own (and nothing else: no approvals
//! page, no API), refusing a scrape without the configured token; and
//! `--log-format json` writes every log line as one JSON object with its level and
//! fields (the banner, for the person starting it, stays text).

use crate::common;

use std::time::Duration;

use common::Setup;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use serde_json::Value;

const TOKEN: &str = "metrics-listener-token";

#[tokio::test]
async fn the_metrics_listener_serves_only_what_operators_read_and_logs_are_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(TOKEN.as_bytes()));
    let path = common::write_setup(
        dir.path(),
        &Setup {
            config_extra: format!(
                "[listen]\nhttp = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\n\n[telemetry]\nmetrics_token_sha256 = \"{hash}\"\n"
            ),
            ..Setup::default()
        },
    );
    let (_gateway, endpoint, _, lines) =
        common::serve_exe_with(&path, &["--log-format", "json"], &[]).await;
    let banner = lines.lock().unwrap().clone();
    let metrics = banner
        .iter()
        .find_map(|l| l.split("metrics: ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("the banner names the metrics listener: {banner:?}"))
        .to_string();
    let base = metrics.trim_end_matches("/metrics").to_string();

    // An unknown tool: refused, and logged.
    let client = ()
        .serve(rmcp::transport::StreamableHttpClientTransport::from_uri(
            endpoint,
        ))
        .await
        .unwrap();
    assert!(
        client
            .peer()
            .call_tool(CallToolRequestParams::new("demo_nope"))
            .await
            .is_err()
    );

    let http = reqwest::Client::new();
    let refused = http.get(&metrics).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let text = http
        .get(&metrics)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("mcp_warden_tool_calls_total{server=\"unknown\",gen_ai_tool_name=\"unknown\",tier=\"unknown\",outcome=\"refused\",stage=\"catalog\"} 1"),
        "{text}"
    );
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    for not_here in ["/", "/approvals", "/grants"] {
        let r = http.get(format!("{base}{not_here}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{not_here} is not on the metrics listener");
    }

    // Every line after the banner is a JSON object; the refusal is one of them.
    let mut refusal = None;
    for _ in 0..100 {
        refusal = lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| {
                v["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("refused"))
            });
        if refusal.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refusal = refusal.expect("the refusal is logged as JSON");
    assert_eq!(refusal["level"], "INFO", "{refusal}");
    assert_eq!(refusal["fields"]["stage"], "Catalog", "{refusal}");
    assert!(refusal["timestamp"].is_string(), "{refusal}");
    let all = lines.lock().unwrap().clone();
    let after_banner = all
        .iter()
        .skip_while(|l| !l.starts_with("Point an MCP client"))
        .skip(1);
    for line in after_banner {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(
            parsed.as_ref().is_ok_and(Value::is_object),
            "not a JSON line: {line}"
        );
    }
}
