//! Resources through the gateway: URIs namespaced by their upstream (`demo+note://plan`),
//! listed (with templates) only as policy allows the caller's whole chain, and every read
//! decided and audited before it reaches the upstream, with the contents' URIs renamed
//! too. A refused or unknown read is an error that says why and never reaches the
//! upstream. Completing a resource template's argument is decided as a read of the template.

use crate::common;

use common::{Harness, Setup};
use rmcp::model::ReadResourceRequestParams;
use serde_json::json;

fn read(uri: &str) -> ReadResourceRequestParams {
    ReadResourceRequestParams::new(uri.to_string())
}

#[tokio::test]
async fn resources_and_templates_are_listed_under_their_upstreams_name() {
    let h = Harness::start().await;
    let uris: Vec<String> = h.resource_uris().await;
    assert_eq!(uris, ["demo+note://plan", "demo+note://welcome"]);
    let templates: Vec<String> = h
        .client
        .peer()
        .list_all_resource_templates()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.uri_template.clone())
        .collect();
    assert_eq!(templates, ["demo+note://{title}"]);
}

#[tokio::test]
async fn an_allowed_read_is_audited_then_forwarded_with_uris_renamed() {
    let h = Harness::start().await;
    let result = h
        .client
        .peer()
        .read_resource(read("demo+note://plan"))
        .await
        .unwrap();
    let contents = serde_json::to_value(&result.contents).unwrap();
    assert_eq!(
        contents,
        json!([{"uri": "demo+note://plan", "mimeType": "text/plain", "text": "Refund order 1001 once the customer confirms."}])
    );
    assert_eq!(h.upstream_calls(), vec![json!({"resource": "note://plan"})]);
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
            &json!("resources/read"),
            &json!("note://plan"),
            &json!("allow")
        )
    );
}

#[tokio::test]
async fn a_resource_policy_denies_is_hidden_refused_audited_and_never_read() {
    let shipped = std::fs::read_to_string(common::repo().join("policies/policy.csv")).unwrap();
    let h = Harness::with(Setup {
        policy: Some(format!(
            "{shipped}\np, role:assistant, demo/resources/note://plan, read, deny\n"
        )),
        ..Setup::default()
    })
    .await;
    let uris: Vec<String> = h.resource_uris().await;
    assert_eq!(uris, ["demo+note://welcome"]);
    let refused = h
        .client
        .peer()
        .read_resource(read("demo+note://plan"))
        .await
        .unwrap_err();
    let rmcp::service::ServiceError::McpError(error) = &refused else {
        panic!("a JSON-RPC error, not {refused}");
    };
    // What a client gets for a resource it cannot read, as for one that does not exist.
    assert_eq!(error.code, rmcp::model::ErrorCode::RESOURCE_NOT_FOUND);
    let err = refused.to_string();
    assert!(err.contains("denied by policy rule"), "{err}");
    let record = &h.audit().await[0];
    assert_eq!(
        (&record["kind"], &record["decision"]),
        (&json!("access"), &json!("deny"))
    );
    for bad in ["note://plan", "nope+note://plan"] {
        let err = h
            .client
            .peer()
            .read_resource(read(bad))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("unknown resource `{bad}`")), "{err}");
    }
    assert!(h.upstream_calls().is_empty(), "{:?}", h.upstream_calls());
}

#[tokio::test]
async fn an_owner_can_tier_resources_by_uri_prefix() {
    let shipped = std::fs::read_to_string(common::repo().join("tool-manifests/demo.toml")).unwrap();
    let h = Harness::with(Setup {
        manifest: Some(format!(
            "{shipped}\n[resources.\"note://pl\"]\ntier = \"act\"\n"
        )),
        ..Setup::default()
    })
    .await;
    assert_eq!(
        h.resource_uris().await,
        ["demo+note://welcome"],
        "the assistant's `act` calls need approval, which reads cannot wait for"
    );
    let err = h
        .client
        .peer()
        .read_resource(read("demo+note://plan"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("requires a human approval by policy"), "{err}");
    assert_eq!(h.audit().await[0]["tier"], "act");
    assert!(h.upstream_calls().is_empty());
}

fn complete_template(value: &str) -> rmcp::model::CompleteRequestParams {
    rmcp::model::CompleteRequestParams::new(
        rmcp::model::Reference::for_resource("demo+note://{title}"),
        serde_json::from_value(json!({"name": "title", "value": value})).unwrap(),
    )
}

#[tokio::test]
async fn completing_a_template_argument_is_decided_as_a_read_of_the_template() {
    let h = Harness::start().await;
    let completed = h
        .client
        .peer()
        .complete(complete_template("pl"))
        .await
        .unwrap();
    assert_eq!(completed.completion.values, ["plan"]);
    assert_eq!(
        h.upstream_calls(),
        vec![json!({"complete": "title", "value": "pl"})]
    );
    let record = &h.audit().await[0];
    assert_eq!(
        (&record["method"], &record["name"], &record["decision"]),
        (
            &json!("completion/complete"),
            &json!("note://{title}"),
            &json!("allow")
        )
    );

    let shipped = std::fs::read_to_string(common::repo().join("policies/policy.csv")).unwrap();
    let denied = Harness::with(Setup {
        policy: Some(format!(
            "{shipped}\np, role:assistant, demo/resources/*, read, deny\n"
        )),
        ..Setup::default()
    })
    .await;
    let err = denied
        .client
        .peer()
        .complete(complete_template("pl"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("denied by policy rule"), "{err}");
    assert!(denied.upstream_calls().is_empty());
    assert_eq!(denied.audit().await[0]["decision"], "deny");
}
