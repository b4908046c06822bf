//! Over Streamable HTTP, with `[auth]` and API keys configured, every caller proves who it
//! is. A valid JWT (RS256 or ES256 from the issuer's JWKS, HS256 from its secret) or API
//! key gets in, as the chain it proves; every other credential is refused with 401 (403
//! for a missing scope), with a `WWW-Authenticate` pointing at the protected resource
//! metadata, and the upstream never hears of the request. The keys in `tests/auth/` are
//! test-only keys, made for these tests.

use crate::common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{Setup, http_gateway, read_lines, repo, text};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.test";
const RESOURCE: &str = "https://warden.test/mcp";
const SECRET: &str = "a-test-secret-of-more-than-32-bytes-for-hs256";
const POLICY: &str = "p, role:assistant, demo/*, read, allow
p, role:assistant, demo/*, transform, allow
g, agent:helpdesk, role:assistant
g, agent:planner, role:assistant
g, user:alice, role:assistant
";

/// The test identity provider: its signing keys and the JWKS and secret files the
/// gateway reads.
struct Idp {
    dir: tempfile::TempDir,
    rsa: EncodingKey,
    ec: EncodingKey,
}

impl Idp {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let read = |f: &str| std::fs::read(repo().join("tests/auth").join(f)).unwrap();
        let rsa = EncodingKey::from_rsa_pem(&read("rsa-private.pem")).unwrap();
        let ec = EncodingKey::from_ec_pem(&read("ec-private.pem")).unwrap();
        let public = |key: &EncodingKey, alg, kid: &str| {
            let mut jwk = Jwk::from_encoding_key(key, alg).unwrap();
            jwk.common.key_id = Some(kid.into());
            jwk
        };
        let set = JwkSet {
            keys: vec![
                public(&rsa, Algorithm::RS256, "rsa-1"),
                public(&ec, Algorithm::ES256, "ec-1"),
            ],
        };
        std::fs::write(
            dir.path().join("jwks.json"),
            serde_json::to_string(&set).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join("secret"), SECRET).unwrap();
        Self { dir, rsa, ec }
    }

    /// The `[auth]` and API-key configuration for this provider.
    fn config(&self, extra_auth: &str, api_key_hash: &str) -> String {
        format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\nallowed_origins = [\"https://agents.test\"]\n\n[auth]\nresource = \"{RESOURCE}\"\nmax_token_lifetime = \"1h\"\nmax_chain_depth = 3\n{extra_auth}\n\n[[auth.jwt]]\nissuer = \"{ISSUER}\"\njwks_file = {:?}\n\n[[auth.jwt]]\nissuer = \"https://hs.test\"\nsecret_file = {:?}\n\n[[identity.api_keys]]\nagent = \"agent:helpdesk\"\non_behalf_of = \"user:alice\"\nsha256 = \"{api_key_hash}\"\n",
            self.dir.path().join("jwks.json"),
            self.dir.path().join("secret"),
        )
    }

    fn sign(&self, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(String::from);
        let key = match alg {
            Algorithm::RS256 => self.rsa.clone(),
            Algorithm::ES256 => self.ec.clone(),
            _ => EncodingKey::from_secret(SECRET.as_bytes()),
        };
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }

    /// A valid RS256 token for alice's helpdesk agent, with `change` applied.
    fn token(&self, change: impl FnOnce(&mut Value)) -> String {
        let mut claims = claims();
        change(&mut claims);
        self.sign(Algorithm::RS256, Some("rsa-1"), &claims)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Value {
    json!({
        "iss": ISSUER, "aud": RESOURCE, "sub": "alice",
        "act": {"sub": "helpdesk"},
        "iat": now(), "exp": now() + 600, "jti": uuid::Uuid::new_v4().to_string(),
    })
}

struct Gateway {
    dir: tempfile::TempDir,
    url: String,
    state: std::sync::Arc<mcp_warden::gateway::State>,
    idp: Idp,
    api_key: String,
}

async fn start(extra_auth: &str) -> Gateway {
    let idp = Idp::new();
    let (api_key, hash) = mcp_warden::identity::new_api_key();
    let setup = Setup {
        policy: Some(POLICY.into()),
        config_extra: idp.config(extra_auth, &hash),
        ..Setup::default()
    };
    let (dir, url, state) = http_gateway(&setup).await;
    Gateway {
        dir,
        url,
        state,
        idp,
        api_key,
    }
}

impl Gateway {
    /// A raw `initialize` POST with these headers; its status, challenge and body.
    async fn post(&self, url: &str, headers: &[(&str, String)]) -> (u16, String, Value) {
        let mut request = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
        let response = request.body(body.to_string()).send().await.unwrap();
        let status = response.status().as_u16();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        (
            status,
            challenge,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn with_bearer(&self, token: &str) -> (u16, String, Value) {
        self.post(&self.url, &[("authorization", format!("Bearer {token}"))])
            .await
    }

    /// Refused with 401 `invalid_token` saying `why`, and nothing reached the upstream.
    async fn assert_refused(&self, token: &str, why: &str) {
        let (status, challenge, body) = self.with_bearer(token).await;
        assert_eq!(status, 401, "{body}");
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        let said = body["error_description"].as_str().unwrap_or_default();
        assert!(said.contains(why), "`{said}` should say `{why}`");
        assert!(self.upstream_calls().is_empty());
        // The audit says why, at the transport stage, with no chain (none was proven).
        let last = self.audit().await.into_iter().last().unwrap();
        assert_eq!(
            (&last["kind"], &last["stage"], &last["http"]["status"]),
            (&json!("decision"), &json!("transport"), &json!(401)),
            "{last}"
        );
        assert!(last["error"].as_str().unwrap().contains(why), "{last}");
        assert!(last.get("chain").is_none(), "{last}");
    }

    async fn client(&self, token: &str) -> rmcp::service::RunningService<RoleClient, ()> {
        let config =
            StreamableHttpClientTransportConfig::with_uri(self.url.as_str()).auth_header(token);
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await
            .unwrap()
    }

    fn upstream_calls(&self) -> Vec<Value> {
        read_lines(&self.dir.path().join("calls.jsonl"))
    }

    async fn audit(&self) -> Vec<Value> {
        self.state.audit.flush().await.unwrap();
        common::audit_records(&self.dir.path().join("audit.jsonl"))
    }
}

async fn echo(
    client: &rmcp::service::RunningService<RoleClient, ()>,
) -> rmcp::model::CallToolResult {
    let args = json!({"text": "hi"}).as_object().cloned().unwrap();
    client
        .peer()
        .call_tool(CallToolRequestParams::new("demo_echo").with_arguments(args))
        .await
        .unwrap()
}

#[tokio::test]
async fn valid_tokens_and_keys_get_in_as_the_chain_they_prove() {
    let gw = start("").await;
    let rs256 = gw.idp.token(|_| {});
    let client = gw.client(&rs256).await;
    assert_eq!(text(&echo(&client).await), "hi");
    let attempt = gw
        .audit()
        .await
        .into_iter()
        .find(|r| r["kind"] == "attempt")
        .unwrap();
    assert_eq!(attempt["chain"], json!(["user:alice", "agent:helpdesk"]));
    assert_eq!(attempt["credential"]["kind"], "jwt");
    assert_eq!(attempt["credential"]["issuer"], ISSUER);
    assert!(attempt["credential"]["jti"].is_string());

    let es256 = gw.idp.sign(Algorithm::ES256, Some("ec-1"), &claims());
    assert_eq!(text(&echo(&gw.client(&es256).await).await), "hi");
    let mut hs = claims();
    hs["iss"] = json!("https://hs.test");
    let hs256 = gw.idp.sign(Algorithm::HS256, None, &hs);
    assert_eq!(text(&echo(&gw.client(&hs256).await).await), "hi");
    assert_eq!(text(&echo(&gw.client(&gw.api_key).await).await), "hi");
    let last = gw
        .audit()
        .await
        .into_iter()
        .rfind(|r| r["kind"] == "attempt")
        .unwrap();
    assert_eq!(last["credential"], json!({"kind": "api_key"}));
    assert_eq!(last["chain"], json!(["user:alice", "agent:helpdesk"]));
}

#[tokio::test]
async fn every_bad_token_is_refused_before_the_gateway_sees_it() {
    let gw = start("").await;
    let idp = &gw.idp;
    gw.assert_refused(
        &idp.token(|c| c["aud"] = json!("https://other.test/mcp")),
        "`aud`",
    )
    .await;
    gw.assert_refused(&idp.token(|c| c["exp"] = json!(now() - 120)), "expired")
        .await;
    gw.assert_refused(
        &idp.token(|c| c["nbf"] = json!(now() + 600)),
        "not valid yet",
    )
    .await;
    let long = idp.token(|c| c["exp"] = json!(now() + 7200));
    gw.assert_refused(&long, "longer than the 1h").await;
    gw.assert_refused(
        &idp.token(|c| c["iss"] = json!("https://evil.test")),
        "`iss`",
    )
    .await;
    gw.assert_refused(
        &idp.sign(Algorithm::RS256, Some("rsa-9"), &claims()),
        "unknown key id `rsa-9`",
    )
    .await;
    // Signed with the EC key but claiming the RSA key's id.
    gw.assert_refused(
        &idp.sign(Algorithm::ES256, Some("rsa-1"), &claims()),
        "not for",
    )
    .await;
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims())
    );
    gw.assert_refused(&unsigned, "`alg: none`").await;
    gw.assert_refused("mwk_not-a-configured-key", "unknown API key")
        .await;
    // Alice's signature on a payload that names someone else.
    let signed = idp.token(|_| {});
    let parts: Vec<&str> = signed.split('.').collect();
    let mut forged = claims();
    forged["sub"] = json!("root");
    let tampered = format!("{}.{}.{}", parts[0], b64(&forged), parts[2]);
    gw.assert_refused(&tampered, "signature").await;
}

fn b64(value: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test]
async fn missing_credentials_and_query_tokens_get_401_pointing_at_the_metadata() {
    let gw = start("").await;
    let (status, challenge, _) = gw.post(&gw.url, &[]).await;
    assert_eq!(status, 401);
    let metadata =
        "resource_metadata=\"https://warden.test/.well-known/oauth-protected-resource/mcp\"";
    assert!(
        challenge.starts_with("Bearer") && challenge.contains(metadata),
        "{challenge}"
    );

    let token = gw.idp.token(|_| {});
    let in_query = format!("{}?access_token={token}", gw.url);
    let (status, challenge, body) = gw
        .post(&in_query, &[("authorization", format!("Bearer {token}"))])
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(challenge.contains("invalid_request"), "{challenge}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("query string")
    );
    assert!(gw.upstream_calls().is_empty());

    let base = gw.url.trim_end_matches("/mcp");
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let doc: Value = reqwest::get(format!("{base}{path}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["resource"], RESOURCE);
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    }
}

#[tokio::test]
async fn a_token_without_the_required_scope_gets_403_insufficient_scope() {
    let gw = start("scope = \"mcp:tools\"").await;
    let (status, challenge, _) = gw.with_bearer(&gw.idp.token(|_| {})).await;
    assert_eq!(status, 403);
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"mcp:tools\""),
        "{challenge}"
    );
    let scoped = gw.idp.token(|c| c["scope"] = json!("openid mcp:tools"));
    assert_eq!(text(&echo(&gw.client(&scoped).await).await), "hi");
}

#[tokio::test]
async fn delegation_chains_are_checked_and_only_the_token_counts() {
    let gw = start("").await;
    // Too deep (4 identities, 3 allowed) and cyclic chains are refused outright.
    let deep = gw.idp.token(|c| {
        c["act"] =
            json!({"sub": "helpdesk", "act": {"sub": "planner", "act": {"sub": "scheduler"}}});
    });
    gw.assert_refused(&deep, "more than the 3 allowed").await;
    let cycle = gw
        .idp
        .token(|c| c["act"] = json!({"sub": "helpdesk", "act": {"sub": "helpdesk"}}));
    gw.assert_refused(&cycle, "twice").await;

    // A sub-agent chain: alice → planner → helpdesk (current actor outermost).
    let nested = gw
        .idp
        .token(|c| c["act"] = json!({"sub": "helpdesk", "act": {"sub": "planner"}}));
    let config = StreamableHttpClientTransportConfig::with_uri(gw.url.as_str())
        .auth_header(nested)
        .custom_headers(
            [(
                "x-mcp-warden-act".parse().unwrap(),
                "user:root".parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        );
    let client = ().serve(StreamableHttpClientTransport::from_config(config)).await.unwrap();
    assert_eq!(text(&echo(&client).await), "hi");
    let attempt = gw
        .audit()
        .await
        .into_iter()
        .find(|r| r["kind"] == "attempt")
        .unwrap();
    assert_eq!(
        attempt["chain"],
        json!(["user:alice", "agent:planner", "agent:helpdesk"])
    );
    assert_eq!(attempt["agent"], "agent:helpdesk");

    // The agent is allowed, its principal is not: denied, audited, never forwarded.
    let mallory = gw.idp.token(|c| c["sub"] = json!("mallory"));
    let refused = echo(&gw.client(&mallory).await).await;
    assert_eq!(refused.is_error, Some(true));
    assert!(
        text(&refused).contains("`user:mallory`"),
        "{}",
        text(&refused)
    );
    let last = gw.audit().await.into_iter().last().unwrap();
    assert_eq!(
        (&last["decision"], &last["chain"][0]),
        (&json!("deny"), &json!("user:mallory"))
    );
    let echoed = gw
        .upstream_calls()
        .iter()
        .filter(|c| c["tool"] == "echo")
        .count();
    assert_eq!(echoed, 1, "only the allowed call reached the upstream");
}

#[tokio::test]
async fn a_session_stays_with_its_caller_and_foreign_origins_are_refused() {
    let gw = start("").await;
    let alice = gw.idp.token(|_| {});
    let (status, _, _) = gw.with_bearer(&alice).await;
    assert_eq!(status, 200);
    let response = reqwest::Client::new()
        .post(&gw.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {alice}"))
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}).to_string())
        .send()
        .await
        .unwrap();
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let planner = gw.idp.token(|c| c["act"] = json!({"sub": "planner"}));
    let (status, _, body) = gw
        .post(
            &gw.url,
            &[
                ("authorization", format!("Bearer {planner}")),
                ("mcp-session-id", session),
            ],
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("another caller")
    );
    let last = gw.audit().await.into_iter().last().unwrap();
    assert_eq!(
        (&last["stage"], &last["http"]["status"]),
        (&json!("transport"), &json!(403)),
        "{last}"
    );
    assert_eq!(
        last["chain"],
        json!(["user:alice", "agent:planner"]),
        "the caller it proved to be: {last}"
    );
    let made_up = [
        ("authorization", format!("Bearer {alice}")),
        ("mcp-session-id", "not-a-session-anyone-opened".into()),
    ];
    let (status, body, _) = gw.post(&gw.url, &made_up).await;
    assert_eq!(
        status, 404,
        "a session id no gateway sealed is not found, so the client opens a new one: {body}"
    );

    let (status, _, _) = gw
        .post(
            &gw.url,
            &[
                ("authorization", format!("Bearer {alice}")),
                ("origin", "https://evil.example".into()),
            ],
        )
        .await;
    assert_eq!(status, 403);
    assert!(gw.upstream_calls().is_empty());
    let last = gw.audit().await.into_iter().last().unwrap();
    assert_eq!(
        (&last["stage"], &last["http"]["status"]),
        (&json!("transport"), &json!(403)),
        "{last}"
    );
    assert!(
        last["error"].as_str().unwrap().contains("Origin"),
        "a foreign Origin is audited: {last}"
    );
    assert_eq!(
        last["chain"],
        json!(["user:alice", "agent:helpdesk"]),
        "{last}"
    );
    let allowed = [
        ("authorization", format!("Bearer {alice}")),
        ("origin", "https://agents.test".into()),
    ];
    let (status, _, body) = gw.post(&gw.url, &allowed).await;
    assert_eq!(status, 200, "a configured origin is allowed: {body}");
}

#[tokio::test]
async fn the_callers_token_never_reaches_an_http_upstream() {
    let idp = Idp::new();
    let upstream_dir = tempfile::tempdir().unwrap();
    let calls = upstream_dir.path().join("calls.jsonl");
    let (_demo, upstream_url) = common::demo_over_http(&calls);
    let dir = tempfile::tempdir().unwrap();
    let (_key, hash) = mcp_warden::identity::new_api_key();
    let setup = Setup {
        policy: Some(POLICY.into()),
        config_extra: idp.config("", &hash),
        ..Setup::default()
    };
    let path = common::write_setup(dir.path(), &setup);
    common::point_demo_at(&path, &upstream_url);
    let config = mcp_warden::config::Config::load(&path).unwrap();
    let url = common::serve_http(mcp_warden::gateway::State::start(config).await.unwrap()).await;
    let token = idp.token(|_| {});
    let config =
        StreamableHttpClientTransportConfig::with_uri(url.as_str()).auth_header(token.clone());
    let client = ().serve(StreamableHttpClientTransport::from_config(config)).await.unwrap();
    assert_eq!(text(&echo(&client).await), "hi");
    let received = read_lines(&calls);
    assert_eq!(received.len(), 1, "{received:?}");
    let headers = received[0]["headers"].to_string();
    assert!(
        !headers.contains(&token),
        "the caller's token reached the upstream: {headers}"
    );
    assert!(
        received[0]["headers"].get("authorization").is_none(),
        "{headers}"
    );
    assert!(
        received[0]["headers"].get("x-gateway-key").is_some(),
        "{headers}"
    );
}

#[tokio::test]
async fn keys_from_a_jwks_url_are_fetched_again_when_a_token_names_a_new_one() {
    let idp = Idp::new();
    let full: Value =
        serde_json::from_str(&std::fs::read_to_string(idp.dir.path().join("jwks.json")).unwrap())
            .unwrap();
    let rsa_only = json!({"keys": [full["keys"][0].clone()]});
    let served = std::sync::Arc::new(std::sync::Mutex::new(rsa_only));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let document = served.clone();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let body = document.lock().unwrap().clone();
            async move { axum::Json(body) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = format!(
        "[auth]\nresource = \"{RESOURCE}\"\n\n[[auth.jwt]]\nissuer = \"{ISSUER}\"\njwks_url = \"{jwks_url}\"\n"
    );
    let setup = Setup {
        policy: Some(POLICY.into()),
        config_extra: config,
        ..Setup::default()
    };
    let (_dir, url, _) = http_gateway(&setup).await;
    let gw = |token: String| {
        let url = url.clone();
        async move {
            let config =
                StreamableHttpClientTransportConfig::with_uri(url.as_str()).auth_header(token);
            ().serve(StreamableHttpClientTransport::from_config(config))
                .await
        }
    };
    assert!(
        gw(idp.token(|_| {})).await.is_ok(),
        "the key fetched at start verifies"
    );
    // The issuer rotates in an EC key; the first token naming it makes the gateway fetch.
    *served.lock().unwrap() = full;
    let es256 = idp.sign(Algorithm::ES256, Some("ec-1"), &claims());
    assert_eq!(text(&echo(&gw(es256).await.unwrap()).await), "hi");
    let unknown = idp.sign(Algorithm::ES256, Some("ec-2"), &claims());
    assert!(
        gw(unknown).await.is_err(),
        "a key the issuer never published stays unknown"
    );
}

/// A token's `task` claim binds the chain: a call may narrow it, never replace it; the
/// task is in the records of its calls, and a replacing call is refused, audited at the
/// `task` stage, and never forwarded.
#[tokio::test]
async fn a_tokens_task_may_be_narrowed_by_a_call_but_never_replaced() {
    let gw = start("").await;
    let token = gw.idp.token(|c| {
        c["task"] = json!({"id": "T-42", "objective": "migrate the March tickets"});
    });
    let client = gw.client(&token).await;
    let call = |task: Option<Value>| {
        let mut params = CallToolRequestParams::new("demo_echo")
            .with_arguments(json!({"text": "hi"}).as_object().cloned().unwrap());
        if let Some(task) = task {
            params.meta =
                Some(serde_json::from_value(json!({"io.mcp-warden/task": task})).unwrap());
        }
        client.peer().call_tool(params)
    };
    assert_ne!(call(None).await.unwrap().is_error, Some(true));
    let narrowed = call(Some(json!({"id": "T-42/step-1", "objective": "copy"})))
        .await
        .unwrap();
    assert_ne!(narrowed.is_error, Some(true), "{}", common::text(&narrowed));
    let replaced = call(Some(json!({"id": "T-43"}))).await.unwrap();
    assert_eq!(replaced.is_error, Some(true));
    assert!(
        common::text(&replaced).contains("never replace it"),
        "{}",
        common::text(&replaced)
    );
    assert_eq!(gw.upstream_calls().len(), 2);
    let audit = gw.audit().await;
    let attempts: Vec<&Value> = audit.iter().filter(|r| r["kind"] == "attempt").collect();
    assert_eq!(
        attempts[0]["task"],
        json!({"id": "T-42", "objective": "migrate the March tickets"})
    );
    assert_eq!(attempts[1]["task"]["id"], "T-42/step-1");
    let refused = audit.last().unwrap();
    assert_eq!(
        (&refused["kind"], &refused["stage"]),
        (&json!("decision"), &json!("task"))
    );
}
