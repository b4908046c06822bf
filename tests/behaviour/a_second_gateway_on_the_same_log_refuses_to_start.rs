//! Two gateways writing one audit log would interleave their records and break its
//! chain: while a gateway runs, a second one started with the same configuration refuses
//! to start, says why, and writes nothing; the first goes on with a chain that verifies.

use crate::common;

use common::{EXE, Harness, Setup};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_on_the_same_log_refuses_to_start_and_writes_nothing() {
    let h = Harness::with(Setup::default()).await;
    h.call("demo_echo", json!({"text": "first"})).await.unwrap();
    let before = h.audit().await.len();
    let config = h.dir.path().join("warden.toml");
    let second = tokio::process::Command::new(EXE)
        .args(["serve", "--transport", "stdio", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        said.contains("another running gateway writes this log"),
        "{said}"
    );
    assert!(second.stdout.is_empty(), "stdout is the protocol channel");
    h.call("demo_echo", json!({"text": "still here"}))
        .await
        .unwrap();
    let after = h.audit().await;
    assert_eq!(after.len(), before + 2, "only the first gateway's records");
    assert!(mcp_warden::audit::verify(&h.audit_path()).is_ok());
}
