//! Casbin rules under the shipped model: loaded, or refused with problems, never a panic
//! (casbin's own traps included: rows of the wrong length, patterns it cannot compile).
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

const MODEL: &str = include_str!("../../policies/model.conf");

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().unwrap())
}

fuzz_target!(|data: &[u8]| {
    let Ok(rules) = std::str::from_utf8(data) else {
        return;
    };
    let load = mcp_warden::policy::Policy::load(
        (Path::new("model.conf"), MODEL),
        (Path::new("policy.csv"), rules),
    );
    if let Ok(policy) = runtime().block_on(load) {
        let caller = mcp_warden::identity::Caller {
            principal: Some("user:alice".into()),
            agents: vec!["agent:bot".into()],
            session: "fuzz".into(),
            credential: None,
        };
        let _ = policy.decide(&caller, "demo/echo", mcp_warden::manifest::Tier::Act);
    }
});
