//! A tool manifest as a tool owner (or an attacker who can write one) writes it: parsed
//! with every problem reported, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let files = vec![(std::path::PathBuf::from("fuzz.toml"), text.to_string())];
    let _ = mcp_warden::manifest::Manifests::parse(&files);
});
