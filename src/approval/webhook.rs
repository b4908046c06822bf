//! Telling people a request is waiting: an HTTP POST of a small JSON notice to the
//! configured webhook, with the link to the approvals page. It carries who asks, for
//! whom, why and which tool — never the arguments (approvers see those after signing in),
//! and a one-line `text` with every control, bidi and invisible character escaped.
//! Delivery is best effort and never delays or decides the call.

use std::time::Duration;

use serde_json::{Value, json};

use super::Request;

/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The notice for a new request.
pub fn notice(request: &Request, page: Option<&str>) -> Value {
    let call = &request.call;
    let chain = &call.chain;
    let link = page.map(|p| format!("{p}/#request-{}", request.id));
    // A redacted intent stays on the approvals page; the notice goes to another service.
    let intent = match (&call.intent, call.intent_redacted) {
        (Some(_), true) => Some("[redacted: read it on the approvals page]"),
        (intent, _) => intent.as_deref(),
    };
    // The one line a chat shows: agent-supplied text cannot rewrite it (a newline and a
    // fake "APPROVED" line, an ESC sequence, a right-to-left override) — it is escaped
    // as the CLI escapes it.
    let text = format!(
        "{} asks to call {}/{} ({}){}: {}",
        call.agent,
        call.server,
        call.tool,
        call.tier,
        chain
            .first()
            .filter(|_| chain.len() > 1)
            .map(|p| format!(" for {p}"))
            .unwrap_or_default(),
        intent.unwrap_or("no intent given"),
    );
    let text = crate::escape::visible(&text);
    json!({
        "event": "approval.requested",
        "id": request.id,
        "agent": call.agent,
        "chain": chain,
        "server": call.server,
        "tool": call.tool,
        "tier": call.tier,
        "intent": intent,
        "quorum": call.quorum,
        "expires": request.expires,
        "url": link,
        "text": text,
    })
}

/// POST `notice` to `url`; failures are logged, never raised.
pub async fn deliver(url: String, notice: Value) {
    let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot build the webhook client");
            return;
        }
    };
    match client.post(&url).json(&notice).send().await {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => tracing::warn!(status = %r.status(), "the approval webhook refused the notice"),
        Err(e) => tracing::warn!(error = %e, "cannot deliver the approval webhook notice"),
    }
}
