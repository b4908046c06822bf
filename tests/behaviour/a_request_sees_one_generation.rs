//! A request is decided under one generation of config, manifests and policy, however a
//! reload lands in the middle of it: `prompts/list` asks each upstream in turn, and a
//! reload while the second one is still answering does not change how that one's
//! prompts are decided. The next request sees the new generation.

use crate::common;
use crate::fixture;

use common::{Harness, Setup};

/// What the shipped policy grants, plus reading everything on the fixture upstream.
fn policy(with_fixture: bool) -> String {
    let shipped = std::fs::read_to_string(common::repo().join("policies/policy.csv")).unwrap();
    let fixture = "p, agent:desktop, fix/*, read, allow\np, user:alice, fix/*, read, allow\n";
    match with_fixture {
        true => format!("{shipped}\n{fixture}"),
        false => shipped,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_during_a_prompt_list_does_not_change_how_it_is_decided() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let hold = fixture::Hold::default();
    let served = fixture::Fixture {
        hold_prompt_list: Some(hold.clone()),
        ..fixture::Fixture::default()
    };
    tokio::spawn(fixture::serve_as(listener, served));
    let h = Harness::with(Setup {
        policy: Some(policy(true)),
        config_extra: format!("[[upstream]]\nid = \"fix\"\nurl = \"{url}\"\n"),
        ..Setup::default()
    })
    .await;

    let peer = h.client.peer().clone();
    let listing = tokio::spawn(async move { peer.list_all_prompts().await.unwrap() });
    // The gateway has decided the demo server's prompts and waits for the fixture's.
    hold.entered.notified().await;
    std::fs::write(h.dir.path().join("policies/policy.csv"), policy(false)).unwrap();
    h.state.reload("test").await.unwrap();
    hold.release.notify_one();
    let names: Vec<String> = listing.await.unwrap().into_iter().map(|p| p.name).collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("fix") && n.ends_with("test_simple_prompt")),
        "the list begun under the first policy decides the fixture's prompts under it too: {names:?}"
    );

    let after = h.prompt_names().await;
    assert!(
        !after.iter().any(|n| n.starts_with("fix")),
        "the next list is decided under the reloaded policy: {after:?}"
    );
    assert!(
        !after.is_empty(),
        "the demo server's prompts are still listed"
    );
}
