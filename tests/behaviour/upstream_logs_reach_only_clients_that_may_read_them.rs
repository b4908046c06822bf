//! Upstream log entries (`notifications/message`) reach the clients that asked for them
//! with `logging/setLevel`, at or above their level, named after their server; and only
//! when policy lets the client read that server's logs (`server/logs`): a log line can
//! carry another caller's data.
#![allow(deprecated)] // logging is deprecated by SEP-2577 but still relayed

use crate::common;

use std::time::Duration;

use common::{Harness, Setup};
use rmcp::model::{LoggingLevel, SetLevelRequestParams};
use serde_json::json;

async fn set_level(
    client: &rmcp::service::RunningService<rmcp::RoleClient, common::TestClient>,
    level: LoggingLevel,
) {
    client
        .peer()
        .set_level(SetLevelRequestParams::new(level))
        .await
        .unwrap();
}

#[tokio::test]
async fn log_entries_reach_subscribed_clients_at_their_level() {
    let h = Harness::start().await;
    set_level(&h.client, LoggingLevel::Info).await;
    let (quiet, quiet_events) = common::connect(&h.state).await;
    set_level(&quiet, LoggingLevel::Error).await;
    let (_silent, silent_events) = common::connect(&h.state).await;

    h.call("demo_echo", json!({"text": "hello"})).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), h.events.logged.notified())
        .await
        .expect("the subscribed client gets the entry");
    let logs = h.events.logs.lock().unwrap().clone();
    assert_eq!(
        logs,
        [json!({"level": "info", "logger": "demo/demo-tools", "data": {"echoed": "hello"}})]
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        quiet_events.logs.lock().unwrap().is_empty(),
        "below its level"
    );
    assert!(silent_events.logs.lock().unwrap().is_empty(), "never asked");
    assert!(
        h.upstream_calls().iter().any(|c| c["set_level"] == "info"),
        "the upstream was asked for the most verbose level anyone wants"
    );
}

#[tokio::test]
async fn a_client_that_may_not_read_a_servers_logs_gets_none() {
    let shipped = std::fs::read_to_string(common::repo().join("policies/policy.csv")).unwrap();
    let h = Harness::with(Setup {
        policy: Some(format!(
            "{shipped}\np, role:assistant, demo/logs, read, deny\n"
        )),
        ..Setup::default()
    })
    .await;
    set_level(&h.client, LoggingLevel::Debug).await;
    let echoed = h
        .call("demo_echo", json!({"text": "secret"}))
        .await
        .unwrap();
    assert_eq!(
        common::text(&echoed),
        "secret",
        "the call itself is allowed"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(h.events.logs.lock().unwrap().is_empty());
}
