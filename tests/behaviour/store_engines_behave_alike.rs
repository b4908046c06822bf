//! The state store behaves the same on both engines, SQLite (one gateway) and
//! PostgreSQL (replicas): every case below runs against each. Two stores opened on one
//! database stand for two replicas: a rule sees every committed change of the other, a
//! request is moved from `approved` to `executed` exactly once however many race for it,
//! and (PostgreSQL) one replica's change wakes the other's watchers at once.

use crate::common::postgres;

use std::sync::Arc;
use std::time::Duration;

use mcp_warden::store::{BucketAsk, GrantRow, RequestRow, Store, VerdictRow};

/// Where a test's stores live: a SQLite file, or a PostgreSQL database.
enum Engine {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Engine {
    fn sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().unwrap())
    }

    fn postgres() -> Self {
        Self::Postgres(postgres::database())
    }

    /// A store on this engine's database (another replica, when called again).
    async fn open(&self) -> Store {
        match self {
            Self::Sqlite(dir) => Store::open(&dir.path().join("state.db")).unwrap(),
            Self::Postgres(url) => Store::connect(url).await.unwrap(),
        }
    }
}

/// Each case, once per engine.
macro_rules! on_both_engines {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$case(super::Engine::sqlite()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$case(super::Engine::postgres()).await;
            }
        }
    )*};
}

on_both_engines!(
    concurrent_updates_of_one_request_each_see_the_others,
    an_update_writes_only_what_the_rule_changed_and_watchers_hear_of_it,
    requests_are_listed_found_and_fall_due_by_status_and_time,
    an_approval_is_used_once_however_many_replicas_race_for_it,
    grants_are_kept_listed_and_revoked_once,
    a_rate_limit_bucket_gives_each_token_once_across_replicas,
    memories_are_changed_by_every_replica_and_forgotten_when_they_expire,
);

fn request(id: &str, binding: &str, created: u64, expires: u64) -> RequestRow {
    RequestRow {
        id: id.into(),
        binding: binding.into(),
        call: format!("{{\"tool\":\"{id}\"}}"),
        status: "pending".into(),
        created,
        expires,
        verdicts: Vec::new(),
    }
}

fn verdict(approver: &str, at: u64) -> VerdictRow {
    VerdictRow {
        approver: approver.into(),
        approve: true,
        comment: Some(format!("{approver} says yes ✓")),
        at,
        confirmed: None,
    }
}

async fn concurrent_updates_of_one_request_each_see_the_others(engine: Engine) {
    // Two replicas' stores, twelve updates from each.
    let stores = [Arc::new(engine.open().await), Arc::new(engine.open().await)];
    stores[0]
        .insert_request(request("r", "b", 1, 2))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..24u64)
        .map(|n| {
            let store = stores[n as usize % 2].clone();
            tokio::spawn(async move {
                store
                    .update_request("r", move |row| {
                        let seen = row.verdicts.len();
                        row.verdicts.push(verdict(&format!("user:{n}"), 10 + n));
                        seen
                    })
                    .await
            })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.unwrap().unwrap().unwrap().1);
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..24).collect::<Vec<_>>(),
        "each update saw every earlier one"
    );
    let row = stores[1].request("r").await.unwrap().unwrap();
    assert_eq!(row.verdicts.len(), 24);
    let ats: Vec<u64> = row.verdicts.iter().map(|v| v.at).collect();
    assert!(
        ats.windows(2).all(|w| w[0] <= w[1]),
        "in the order given: {ats:?}"
    );
}

async fn an_update_writes_only_what_the_rule_changed_and_watchers_hear_of_it(engine: Engine) {
    let store = engine.open().await;
    let mut changes = store.watch();
    let mut r = request("r", "b", 1, 2);
    r.verdicts.push(verdict("user:first", 1));
    store.insert_request(r).await.unwrap();
    assert!(changes.has_changed().unwrap());
    changes.mark_unchanged();
    let (row, out) = store
        .update_request("r", |row| {
            row.status = "approved".into();
            row.expires = 9;
            row.verdicts.push(verdict("user:second", 5));
            "decided"
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.status.as_str(), row.expires, out),
        ("approved", 9, "decided")
    );
    assert!(changes.has_changed().unwrap());
    let stored = store.request("r").await.unwrap().unwrap();
    assert_eq!(stored, row, "read back as written");
    assert_eq!(
        stored.verdicts[1].comment.as_deref(),
        Some("user:second says yes ✓")
    );
    assert!(
        store
            .update_request("nope", |_| ())
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.request("nope").await.unwrap().is_none());
    assert_eq!(store.due_requests("approved", 9).await.unwrap(), ["r"]);
    assert!(store.due_requests("approved", 8).await.unwrap().is_empty());
    // A rule that changes nothing writes nothing, and keeps the row as it was.
    let (same, ()) = store.update_request("r", |_| ()).await.unwrap().unwrap();
    assert_eq!(same, stored);
}

async fn requests_are_listed_found_and_fall_due_by_status_and_time(engine: Engine) {
    let store = engine.open().await;
    store
        .insert_request(request("old", "same", 10, 100))
        .await
        .unwrap();
    store
        .insert_request(request("new", "same", 20, 200))
        .await
        .unwrap();
    store
        .insert_request(request("other", "else", 30, 50))
        .await
        .unwrap();
    store
        .update_request("other", |r| r.status = "denied".into())
        .await
        .unwrap();
    let ids = |rows: Vec<RequestRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.requests(None).await.unwrap()),
        ["other", "new", "old"],
        "newest first"
    );
    assert_eq!(
        ids(store.requests(Some("pending")).await.unwrap()),
        ["new", "old"]
    );
    assert_eq!(
        ids(store.requests(Some("approved")).await.unwrap()),
        Vec::<String>::new()
    );
    // The oldest pending request for a binding, while it has not expired.
    let found = store.find_request("same", "pending", 99).await.unwrap();
    assert_eq!(found.map(|r| r.id).as_deref(), Some("old"));
    let found = store.find_request("same", "pending", 100).await.unwrap();
    assert_eq!(
        found.map(|r| r.id).as_deref(),
        Some("new"),
        "`old` expired at 100"
    );
    assert!(
        store
            .find_request("same", "pending", 200)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_request("else", "pending", 0)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.due_requests("pending", 150).await.unwrap(), ["old"]);
    assert_eq!(
        store.due_requests("pending", 500).await.unwrap(),
        ["old", "new"]
    );
}

async fn an_approval_is_used_once_however_many_replicas_race_for_it(engine: Engine) {
    let stores = [Arc::new(engine.open().await), Arc::new(engine.open().await)];
    let mut r = request("r", "b", 1, u64::MAX / 2);
    r.status = "approved".into();
    stores[0].insert_request(r).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let store = stores[n % 2].clone();
            tokio::spawn(async move {
                store
                    .update_request("r", |row| {
                        let mine = row.status == "approved";
                        if mine {
                            row.status = "executed".into();
                        }
                        mine
                    })
                    .await
                    .unwrap()
                    .unwrap()
                    .1
            })
        })
        .collect();
    let mut used = 0;
    for task in tasks {
        used += usize::from(task.await.unwrap());
    }
    assert_eq!(used, 1, "one call, and only one, used the approval");
    let row = stores[1].request("r").await.unwrap().unwrap();
    assert_eq!(row.status, "executed");
}

async fn grants_are_kept_listed_and_revoked_once(engine: Engine) {
    let stores = [Arc::new(engine.open().await), Arc::new(engine.open().await)];
    let grant = |id: &str, created: u64, task: Option<&str>| GrantRow {
        id: id.into(),
        grantee: "agent:a".into(),
        on_behalf_of: Some("user:alice".into()),
        tools: "demo/*".into(),
        tier: "act".into(),
        reason: "an incident".into(),
        granted_by: "user:carol".into(),
        created,
        expires: created + 1000,
        status: "active".into(),
        revoked_by: None,
        task: task.map(String::from),
    };
    stores[0].insert_grant(grant("g1", 1, None)).await.unwrap();
    stores[1]
        .insert_grant(grant("g2", 2, Some("task-9")))
        .await
        .unwrap();
    let listed = stores[0].grants().await.unwrap();
    assert_eq!(
        listed,
        [grant("g2", 2, Some("task-9")), grant("g1", 1, None)]
    );
    let revokers: Vec<_> = (0..8)
        .map(|n| {
            let store = stores[n % 2].clone();
            tokio::spawn(async move {
                store
                    .update_grant("g1", move |g| {
                        let active = g.status == "active";
                        if active {
                            g.status = "revoked".into();
                            g.revoked_by = Some(format!("user:{n}"));
                        }
                        active
                    })
                    .await
                    .unwrap()
                    .unwrap()
                    .1
            })
        })
        .collect();
    let mut revoked = 0;
    for task in revokers {
        revoked += usize::from(task.await.unwrap());
    }
    assert_eq!(revoked, 1);
    let g1 = stores[1].grants().await.unwrap().pop().unwrap();
    assert_eq!(g1.status, "revoked");
    assert!(g1.revoked_by.is_some());
    assert!(
        stores[0]
            .update_grant("nope", |_| ())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        stores[0].grant("g1").await.unwrap(),
        Some(g1),
        "one grant, by its id"
    );
    assert_eq!(stores[1].grant("nope").await.unwrap(), None);
}

#[tokio::test]
async fn a_change_on_one_postgres_replica_wakes_the_others_watchers() {
    let url = postgres::database();
    let (a, b) = (
        Store::connect(&url).await.unwrap(),
        Store::connect(&url).await.unwrap(),
    );
    // The listener is up once its first bump has come.
    let mut changes = b.watch();
    tokio::time::timeout(Duration::from_secs(5), changes.changed())
        .await
        .expect("the listener starts")
        .unwrap();
    changes.mark_unchanged();
    a.insert_request(request("r", "b", 1, 2)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(1), changes.changed())
        .await
        .expect("b hears of a's change within a second")
        .unwrap();
    assert_eq!(b.request("r").await.unwrap().unwrap().id, "r");
}

#[tokio::test]
async fn a_postgres_schema_newer_than_this_build_is_refused_with_what_to_do() {
    let url = postgres::database();
    drop(Store::connect(&url).await.unwrap());
    let db = url.rsplit('/').next().unwrap();
    postgres::shared()
        .psql(db, "UPDATE mcp_warden_schema SET version = 99")
        .unwrap();
    let err = Store::connect(&url).await.err().unwrap().to_string();
    assert!(
        err.contains("schema version 99") && err.contains("restore a backup"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_postgres_is_an_error_that_names_where_it_looked() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://warden:secret-pw@127.0.0.1:{port}/warden");
    let err = Store::connect(&url).await.err().unwrap().to_string();
    assert!(err.contains(&format!("127.0.0.1:{port}/warden")), "{err}");
    assert!(
        !err.contains("secret-pw"),
        "the password is never shown: {err}"
    );
}

async fn a_rate_limit_bucket_gives_each_token_once_across_replicas(engine: Engine) {
    let stores = [Arc::new(engine.open().await), Arc::new(engine.open().await)];
    // Five tokens, refilled at one a day: the five are all there is.
    let ask = |identity: &str, burst: f64| BucketAsk {
        rule: "agent:*|act".into(),
        identity: identity.into(),
        rate: 1.0 / 86_400.0,
        burst,
    };
    let takers: Vec<_> = (0..16)
        .map(|n| {
            let store = stores[n % 2].clone();
            let asked = ask("agent:a", 5.0);
            tokio::spawn(async move { store.take_tokens(vec![asked]).await.unwrap() })
        })
        .collect();
    let mut taken = 0;
    for t in takers {
        taken += usize::from(t.await.unwrap().is_none());
    }
    assert_eq!(taken, 5, "each token once, whichever replica asked");
    // Several buckets: a token from each, or from none.
    let both = || vec![ask("agent:b", 3.0), ask("user:b", 1.0)];
    assert_eq!(stores[0].take_tokens(both()).await.unwrap(), None);
    let refused = stores[1].take_tokens(both()).await.unwrap();
    assert!(matches!(refused, Some((1, t)) if t < 1.0), "{refused:?}");
    // `agent:b` was not spent by the refused call: two left.
    assert_eq!(
        stores[1]
            .take_tokens(vec![ask("agent:b", 3.0)])
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        stores[0]
            .take_tokens(vec![ask("agent:b", 3.0)])
            .await
            .unwrap(),
        None
    );
    assert!(
        stores[0]
            .take_tokens(vec![ask("agent:b", 3.0)])
            .await
            .unwrap()
            .is_some()
    );
}

/// What sessions have done (a document a key): sixteen changes from two replicas at once
/// all land (each sees the others'); a read gives the documents of the keys asked that
/// have not expired; an expired document reads as none and is changed from empty; a
/// change does not wake watchers (nobody waits on memories).
async fn memories_are_changed_by_every_replica_and_forgotten_when_they_expire(engine: Engine) {
    let stores = Arc::new([engine.open().await, engine.open().await]);
    let watch = stores[0].watch();
    let mut racers = Vec::new();
    for n in 0..16 {
        let stores = stores.clone();
        racers.push(tokio::spawn(async move {
            stores[n % 2]
                .update_memory("http:s1", Duration::from_secs(600), move |doc| {
                    doc.push_str(&format!("[{n}]"));
                })
                .await
                .unwrap();
        }));
    }
    for r in racers {
        r.await.unwrap();
    }
    let docs = stores[1].memories(&["http:s1", "http:none"]).await.unwrap();
    assert_eq!(docs.len(), 1, "{docs:?}");
    for n in 0..16 {
        assert!(
            docs[0].contains(&format!("[{n}]")),
            "change {n} kept: {docs:?}"
        );
    }
    assert!(!watch.has_changed().unwrap(), "watchers are not woken");

    // Kept for a moment only: then it reads as none, and a change starts from empty.
    stores[0]
        .update_memory("task:t1", Duration::from_millis(300), |doc| {
            doc.push_str("old")
        })
        .await
        .unwrap();
    let both = stores[1].memories(&["http:s1", "task:t1"]).await.unwrap();
    assert_eq!(both.len(), 2, "{both:?}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        stores[1]
            .memories(&["http:s1", "task:t1"])
            .await
            .unwrap()
            .len(),
        1
    );
    stores[1]
        .update_memory("task:t1", Duration::from_secs(60), |doc| {
            assert!(
                doc.is_empty(),
                "an expired document is not handed on: {doc}"
            );
            doc.push_str("new");
        })
        .await
        .unwrap();
    assert!(
        stores[0]
            .memories(&["task:t1"])
            .await
            .unwrap()
            .contains(&"new".to_string())
    );
}
