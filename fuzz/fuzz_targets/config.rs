//! `warden.toml` as an operator writes it: checked with every problem reported, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = mcp_warden::config::Config::parse(
        text,
        std::path::Path::new("warden.toml"),
        std::path::Path::new("/fuzz"),
    );
});
