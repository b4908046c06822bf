//! One upstream may be shown without a namespace (`namespace = false`): its tools,
//! prompts and resources keep their own names and URIs, which is what a client written
//! for that one server expects; policy and audit still name it by its id.

use crate::common;

use common::{Harness, Setup, text};
use rmcp::model::{GetPromptRequestParams, ReadResourceRequestParams};
use serde_json::json;

#[tokio::test]
async fn tools_prompts_and_resources_keep_their_own_names() {
    let h = Harness::with(Setup {
        upstream_extra: "namespace = false\n".into(),
        ..Setup::default()
    })
    .await;
    let names = h.tool_names().await;
    assert!(
        names.contains(&"echo".to_string()) && !names.iter().any(|n| n.starts_with("demo_")),
        "{names:?}"
    );
    let echoed = h.call("echo", json!({"text": "bare"})).await.unwrap();
    assert_eq!(text(&echoed), "bare");
    let attempt = &h.audit().await[0];
    assert_eq!(
        (&attempt["server"], &attempt["tool"]),
        (&json!("demo"), &json!("echo"))
    );

    let prompts: Vec<String> = h.prompt_names().await;
    assert_eq!(prompts, ["summarize_note", "customer_reply"]);
    let args = json!({"title": "plan"}).as_object().unwrap().clone();
    let prompt = h
        .client
        .peer()
        .get_prompt(GetPromptRequestParams::new("summarize_note").with_arguments(args))
        .await
        .unwrap();
    assert!(
        serde_json::to_string(&prompt.messages)
            .unwrap()
            .contains("Refund order 1001")
    );

    let uris: Vec<String> = h.resource_uris().await;
    assert_eq!(uris, ["note://plan", "note://welcome"]);
    let read = h
        .client
        .peer()
        .read_resource(ReadResourceRequestParams::new("note://welcome"))
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&read.contents).unwrap()[0]["uri"],
        "note://welcome"
    );

    let missing = h
        .call("demo_echo", json!({"text": "x"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("unknown tool `demo_echo`"), "{missing}");
}

#[test]
fn only_one_upstream_may_go_without_a_namespace() {
    let text = "[[upstream]]\nid = \"a\"\nurl = \"http://127.0.0.1:1/mcp\"\nnamespace = false\n\n[[upstream]]\nid = \"b\"\nurl = \"http://127.0.0.1:2/mcp\"\nnamespace = false\n";
    let err = mcp_warden::config::Config::parse(
        text,
        std::path::Path::new("w.toml"),
        std::path::Path::new("/"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("only one upstream may set `namespace = false`"),
        "{err}"
    );
}
