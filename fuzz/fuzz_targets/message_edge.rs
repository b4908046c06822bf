//! A client's JSON-RPC message at the transports' edge: the check never panics, and a
//! message it lets through is one rmcp can read or one rmcp refuses cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rmcp::model::ClientJsonRpcMessage;

fuzz_target!(|data: &[u8]| {
    if mcp_warden::transport::check_message(data).is_ok() {
        let _ = serde_json::from_slice::<ClientJsonRpcMessage>(data);
    }
});
