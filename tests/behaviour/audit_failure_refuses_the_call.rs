//! If the attempt record cannot be written, the call is refused and never forwarded.

use crate::common;

use std::sync::Arc;

use common::{Setup, connect, write_setup};
use mcp_warden::config::Config;
use mcp_warden::gateway::State;

#[tokio::test]
async fn an_unwritable_audit_log_refuses_every_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_setup(dir.path(), &Setup::default());
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("audit_log = \"audit.jsonl\"", "audit_log = \"/dev/full\"");
    std::fs::write(&path, text).unwrap();
    let state: Arc<State> = State::start(Config::load(&path).unwrap()).await.unwrap();
    let (client, _) = connect(&state).await;
    let params = rmcp::model::CallToolRequestParams::new("demo_list_notes");
    let result = client.peer().call_tool(params).await.unwrap();
    assert_eq!(result.is_error, Some(true));
    let message = common::text(&result);
    assert!(
        message.contains("the audit log could not be written"),
        "{message}"
    );
    assert!(message.contains("the call was not made"), "{message}");
    assert!(
        common::read_lines(&dir.path().join("calls.jsonl")).is_empty(),
        "the upstream must not be called"
    );
    // A device is no file to keep a journal beside: each batch is synced in it directly.
    assert!(!std::path::Path::new("/dev/full.journal").exists());
}
