//! Prompts through the gateway: namespaced like tools, tiered by the owner's manifest
//! (`read` unless it says otherwise), listed only when policy allows the caller's whole
//! chain, and every get decided and audited before it reaches the upstream. A refused get
//! is an error that says why, is audited, and never reaches the upstream. Completing a
//! prompt's argument is decided like getting the prompt.

use crate::common;

use common::{Harness, Setup};
use rmcp::model::GetPromptRequestParams;
use serde_json::json;

/// This agent and its user may read everything of the demo server, and nothing more.
const READ_ONLY: &str = "p, role:reader, demo/*, read, allow\n\
g, agent:desktop, role:reader\n\
g, user:alice, role:reader\n";

fn get(name: &str) -> GetPromptRequestParams {
    GetPromptRequestParams::new(name.to_string())
        .with_arguments(json!({"title": "plan"}).as_object().unwrap().clone())
}

#[tokio::test]
async fn prompts_are_namespaced_and_listed_by_policy_and_tier() {
    let reader = Harness::with(Setup {
        policy: Some(READ_ONLY.into()),
        ..Setup::default()
    })
    .await;
    let names: Vec<String> = reader.prompt_names().await;
    assert_eq!(
        names,
        ["demo_summarize_note"],
        "customer_reply is `transform` by its manifest"
    );

    let assistant = Harness::start().await;
    let names: Vec<String> = assistant.prompt_names().await;
    assert_eq!(names, ["demo_summarize_note", "demo_customer_reply"]);
}

#[tokio::test]
async fn an_allowed_prompt_is_audited_then_fetched() {
    let h = Harness::start().await;
    let result = h
        .client
        .peer()
        .get_prompt(get("demo_summarize_note"))
        .await
        .unwrap();
    let text = serde_json::to_string(&result.messages).unwrap();
    assert!(
        text.contains("Refund order 1001 once the customer confirms."),
        "{text}"
    );
    assert_eq!(
        h.upstream_calls(),
        vec![json!({"prompt": "summarize_note", "args": {"title": "plan"}})]
    );
    let record = &h.audit().await[0];
    assert_eq!(
        (
            &record["kind"],
            &record["method"],
            &record["name"],
            &record["decision"]
        ),
        (
            &json!("access"),
            &json!("prompts/get"),
            &json!("summarize_note"),
            &json!("allow")
        )
    );
    assert_eq!(
        record["args_digest"],
        json!(mcp_warden::digest::canonical(&json!({"title": "plan"})))
    );
}

#[tokio::test]
async fn a_prompt_policy_does_not_allow_is_refused_audited_and_never_fetched() {
    let h = Harness::with(Setup {
        policy: Some(READ_ONLY.into()),
        ..Setup::default()
    })
    .await;
    let refused = h
        .client
        .peer()
        .get_prompt(get("demo_customer_reply"))
        .await
        .unwrap_err();
    let rmcp::service::ServiceError::McpError(error) = &refused else {
        panic!("a JSON-RPC error, not {refused}");
    };
    // What a client gets for a prompt it may not have, as for an unknown one.
    assert_eq!(error.code, rmcp::model::ErrorCode::INVALID_PARAMS);
    let err = refused.to_string();
    assert!(err.contains("no policy rule allows"), "{err}");
    assert!(err.contains("demo/prompts/customer_reply"), "{err}");
    assert!(h.upstream_calls().is_empty());
    let record = &h.audit().await[0];
    assert_eq!(
        (&record["kind"], &record["decision"]),
        (&json!("access"), &json!("deny"))
    );
    assert!(
        record["error"]
            .as_str()
            .unwrap()
            .contains("no policy rule allows")
    );

    let unknown = h
        .client
        .peer()
        .get_prompt(get("nope_x"))
        .await
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("unknown prompt `nope_x`"), "{unknown}");
}

#[tokio::test]
async fn prompt_argument_completion_is_decided_like_the_prompt_and_audited() {
    use rmcp::model::{ArgumentInfo, CompleteRequestParams, Reference};
    let complete = |prompt: &str| {
        CompleteRequestParams::new(
            Reference::for_prompt(prompt),
            ArgumentInfo::new("title", "pl"),
        )
    };
    let h = Harness::with(Setup {
        policy: Some(READ_ONLY.into()),
        ..Setup::default()
    })
    .await;
    let done = h
        .client
        .peer()
        .complete(complete("demo_summarize_note"))
        .await
        .unwrap();
    assert_eq!(done.completion.values, ["plan"]);
    let record = &h.audit().await[0];
    assert_eq!(
        (&record["method"], &record["name"], &record["decision"]),
        (
            &json!("completion/complete"),
            &json!("summarize_note"),
            &json!("allow")
        )
    );
    let refused = h
        .client
        .peer()
        .complete(complete("demo_customer_reply"))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("no policy rule allows"), "{refused}");
    assert_eq!(
        h.upstream_calls(),
        vec![json!({"complete": "title", "value": "pl"})],
        "the refused completion never reached the upstream"
    );
}

#[tokio::test]
async fn an_upstreams_refusal_reaches_the_client_with_its_own_code() {
    let h = Harness::start().await;
    let missing = GetPromptRequestParams::new("demo_summarize_note");
    let refused = h.client.peer().get_prompt(missing).await.unwrap_err();
    let rmcp::service::ServiceError::McpError(error) = refused else {
        panic!("a JSON-RPC error, not {refused}");
    };
    // The demo server answers a missing argument with "invalid params", as it would
    // directly: the gateway does not turn the caller's mistake into its own failure.
    assert_eq!(
        error.code,
        rmcp::model::ErrorCode::INVALID_PARAMS,
        "{error:?}"
    );
    assert!(
        error.message.contains("argument `title` is required"),
        "{}",
        error.message
    );
    let record = h.audit().await.pop().unwrap();
    assert_eq!(
        (&record["kind"], &record["decision"]),
        (&json!("access"), &json!("allow"))
    );
}
