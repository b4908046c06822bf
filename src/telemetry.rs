//! What operators read off a running gateway: the counters and histograms the stages
//! report to, and the Prometheus text `/metrics` serves ([`Metrics::encode`]). A layer,
//! never a stage: nothing here can fail a call or returns a `Result` to one.
//!
//! Label values are bounded: servers come from the config, tools from the catalog (a name
//! the caller made up is `unknown`), methods, tiers, stages and outcomes from fixed
//! lists. Names follow Prometheus' conventions (`_total`, `_seconds`) and, where the
//! OpenTelemetry MCP semantic conventions have one, their attribute names
//! (`mcp_method_name`, `gen_ai_tool_name`). Spans and their export are in [`trace`].

pub mod trace;

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// Whole calls and upstream answers, in seconds: 100 µs to 60 s.
const CALL: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
    15.0, 60.0,
];
/// Policy decisions, in seconds: 1 µs (cached) to 10 ms (cold, large policies).
const DECISION: [f64; 10] = [
    0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.001, 0.01,
];
/// Approval waits, in seconds: a second to an hour.
const WAIT: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// Audit syncs, in seconds: 50 µs to 1 s.
const SYNC: [f64; 12] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0,
];
/// Records per audit batch.
const BATCH: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

fn call_histogram() -> Histogram {
    Histogram::new(CALL)
}

/// A `tools/call`'s labels: where it went, what it was, how it ended, and the stage that
/// refused it (empty for a call that was forwarded).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub server: String,
    pub gen_ai_tool_name: String,
    pub tier: &'static str,
    /// `ok`, `tool_error`, `upstream_error`, `refused`, `input_required` or `task`.
    pub outcome: &'static str,
    pub stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabels {
    pub server: String,
    pub gen_ai_tool_name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabels {
    pub server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub mcp_method_name: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabels {
    pub transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabels {
    pub sink: String,
}

/// What the audit writer reports: records, batches, syncs and failed writes. The writer
/// owns a copy (the handles share their values).
#[derive(Clone, Debug)]
pub struct AuditMetrics {
    pub records: Counter,
    pub batch_records: Histogram,
    pub sync_seconds: Histogram,
    pub write_failures: Counter,
}

impl Default for AuditMetrics {
    fn default() -> Self {
        Self {
            records: Counter::default(),
            batch_records: Histogram::new(BATCH),
            sync_seconds: Histogram::new(SYNC),
            write_failures: Counter::default(),
        }
    }
}

/// What the upstream connections report: restarts and calls' round trips.
#[derive(Clone, Debug)]
pub struct UpstreamMetrics {
    pub restarts: Family<ServerLabels, Counter>,
    pub seconds: Family<ServerLabels, Histogram, fn() -> Histogram>,
}

impl Default for UpstreamMetrics {
    fn default() -> Self {
        Self {
            restarts: Family::default(),
            seconds: Family::new_with_constructor(call_histogram),
        }
    }
}

impl UpstreamMetrics {
    /// One round trip to `server` took `took`.
    pub fn answered(&self, server: &str, took: Duration) {
        let labels = ServerLabels {
            server: server.to_string(),
        };
        self.seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }
}

/// Values read when scraped (gauges of what is there now), set by whoever serves the
/// scrape just before encoding.
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    pub approvals_pending: Gauge,
    pub grants_active: Gauge,
    pub upstream_up: Family<ServerLabels, Gauge>,
    pub tools_quarantined: Family<ServerLabels, Gauge>,
    pub sessions: Family<TransportLabels, Gauge>,
    pub generation: Gauge,
    pub audit_queue: Gauge,
    pub audit_writable: Gauge,
    pub audit_unchecked: Gauge,
    pub witness_queued: Family<SinkLabels, Gauge>,
    pub witness_dropped: Family<SinkLabels, Gauge>,
    pub witness_up: Family<SinkLabels, Gauge>,
    pub kept_tasks: Gauge,
}

/// Every metric the gateway exposes, and the registry that names them.
pub struct Metrics {
    registry: Registry,
    /// One encoding at a time: the scrape-time gauges are set, then read.
    scraping: Mutex<()>,
    pub requests: Family<MethodLabels, Counter>,
    pub calls: Family<CallLabels, Counter>,
    pub call_seconds: Family<ToolLabels, Histogram, fn() -> Histogram>,
    pub decision_seconds: Histogram,
    pub approvals: Family<ResultLabels, Counter>,
    pub approval_wait_seconds: Histogram,
    pub grant_uses: Counter,
    pub catalog_refreshes: Family<ServerLabels, Counter>,
    pub reloads: Family<ResultLabels, Counter>,
    pub audit: AuditMetrics,
    pub upstream: UpstreamMetrics,
    pub gauges: Gauges,
}

impl Metrics {
    /// Register everything; `audit` and `upstream` are the handles their owners already
    /// report to.
    pub fn new(audit: AuditMetrics, upstream: UpstreamMetrics) -> Self {
        let mut this = Self {
            registry: Registry::default(),
            scraping: Mutex::new(()),
            requests: Family::default(),
            calls: Family::default(),
            call_seconds: Family::new_with_constructor(call_histogram),
            decision_seconds: Histogram::new(DECISION),
            approvals: Family::default(),
            approval_wait_seconds: Histogram::new(WAIT),
            grant_uses: Counter::default(),
            catalog_refreshes: Family::default(),
            reloads: Family::default(),
            audit,
            upstream,
            gauges: Gauges::default(),
        };
        this.register();
        // Series that exist from the start at zero, so that `increase()` and alerts see
        // the first one.
        for result in [
            "approved",
            "confirmed",
            "denied",
            "expired",
            "used",
            "cancelled",
        ] {
            let _ = this.approvals.get_or_create(&ResultLabels { result });
        }
        for result in ["ok", "failed"] {
            let _ = this.reloads.get_or_create(&ResultLabels { result });
        }
        this
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "mcp_warden_build",
            "the running build",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        r.register(
            "mcp_warden_requests",
            "MCP requests received, by method",
            self.requests.clone(),
        );
        r.register(
            "mcp_warden_tool_calls",
            "tools/call requests by server, tool, tier and outcome; `stage` names what refused a refused call",
            self.calls.clone(),
        );
        r.register(
            "mcp_warden_tool_call_duration_seconds",
            "a whole tools/call, from its arrival to its answer (approval waits included)",
            self.call_seconds.clone(),
        );
        r.register(
            "mcp_warden_policy_decision_duration_seconds",
            "one policy decision (Casbin over the delegation chain, grants and flow rules)",
            self.decision_seconds.clone(),
        );
        r.register(
            "mcp_warden_upstream_duration_seconds",
            "a forwarded call's round trip to its upstream",
            self.upstream.seconds.clone(),
        );
        self.register_approvals();
        self.register_audit();
        self.register_upstreams();
        self.registry.register(
            "mcp_warden_trace_spans",
            "spans by what became of them: exported, dropped (the export queue was full) or failed (the OTLP receiver refused them or could not be reached)",
            trace::export::SPANS.clone(),
        );
    }

    fn register_approvals(&mut self) {
        let (r, g) = (&mut self.registry, &self.gauges);
        r.register(
            "mcp_warden_approvals_pending",
            "approval requests waiting for a decision",
            g.approvals_pending.clone(),
        );
        r.register(
            "mcp_warden_approvals",
            "approval waits ended, by result (approved, confirmed, denied, expired, cancelled)",
            self.approvals.clone(),
        );
        r.register(
            "mcp_warden_approval_wait_seconds",
            "how long a call waited for its approval",
            self.approval_wait_seconds.clone(),
        );
        r.register(
            "mcp_warden_grants_active",
            "just-in-time grants in force",
            g.grants_active.clone(),
        );
        r.register(
            "mcp_warden_grant_uses",
            "calls allowed by a just-in-time grant",
            self.grant_uses.clone(),
        );
    }

    fn register_audit(&mut self) {
        let (r, g, a) = (&mut self.registry, &self.gauges, &self.audit);
        r.register(
            "mcp_warden_audit_records",
            "audit records made durable",
            a.records.clone(),
        );
        r.register(
            "mcp_warden_audit_batch_records",
            "records per group commit",
            a.batch_records.clone(),
        );
        r.register(
            "mcp_warden_audit_sync_duration_seconds",
            "one group commit's write and fsync",
            a.sync_seconds.clone(),
        );
        r.register(
            "mcp_warden_audit_write_failures",
            "group commits that failed (their calls were refused)",
            a.write_failures.clone(),
        );
        r.register(
            "mcp_warden_audit_queue_depth",
            "records and calls in flight in the audit writer",
            g.audit_queue.clone(),
        );
        r.register(
            "mcp_warden_audit_writable",
            "1 while the audit log can be written, 0 while every call is refused",
            g.audit_writable.clone(),
        );
        r.register(
            "mcp_warden_audit_unchecked_records",
            "records written since the last signed checkpoint (a checkpoint follows within a second while records flow)",
            g.audit_unchecked.clone(),
        );
        r.register(
            "mcp_warden_witness_queued",
            "audit lines waiting to reach a witness",
            g.witness_queued.clone(),
        );
        r.register(
            "mcp_warden_witness_dropped",
            "audit lines a witness's full queue could not take, since start",
            g.witness_dropped.clone(),
        );
        r.register(
            "mcp_warden_witness_up",
            "1 while delivery to a witness works",
            g.witness_up.clone(),
        );
    }

    fn register_upstreams(&mut self) {
        let (r, g) = (&mut self.registry, &self.gauges);
        r.register(
            "mcp_warden_upstream_up",
            "1 while the gateway is connected to the upstream",
            g.upstream_up.clone(),
        );
        r.register(
            "mcp_warden_upstream_restarts",
            "connections to an upstream made again after it was lost",
            self.upstream.restarts.clone(),
        );
        r.register(
            "mcp_warden_tools_quarantined",
            "tools whose live definition does not match their pin",
            g.tools_quarantined.clone(),
        );
        r.register(
            "mcp_warden_catalog_refreshes",
            "tool lists read again from an upstream",
            self.catalog_refreshes.clone(),
        );
        r.register(
            "mcp_warden_sessions",
            "open client sessions, by transport",
            g.sessions.clone(),
        );
        r.register(
            "mcp_warden_tasks_kept",
            "tasks (2026-07-28 tasks extension) the gateway keeps for their callers",
            g.kept_tasks.clone(),
        );
        r.register(
            "mcp_warden_reload_generation",
            "the generation of config, manifests and policy in force (1 at start)",
            g.generation.clone(),
        );
        r.register(
            "mcp_warden_reloads",
            "reloads, by result (ok, failed)",
            self.reloads.clone(),
        );
    }

    /// One request of `method` arrived.
    pub fn request(&self, method: &'static str) {
        self.requests
            .get_or_create(&MethodLabels {
                mcp_method_name: method,
            })
            .inc();
    }

    /// A `tools/call` ended: counted, and its duration observed.
    pub fn call(&self, labels: CallLabels, took: Duration) {
        let tool = ToolLabels {
            server: labels.server.clone(),
            gen_ai_tool_name: labels.gen_ai_tool_name.clone(),
        };
        self.calls.get_or_create(&labels).inc();
        self.call_seconds
            .get_or_create(&tool)
            .observe(took.as_secs_f64());
    }

    /// An approval wait ended with `result` after `waited`.
    pub fn approval(&self, result: &'static str, waited: Duration) {
        self.approvals.get_or_create(&ResultLabels { result }).inc();
        self.approval_wait_seconds.observe(waited.as_secs_f64());
    }

    /// The Prometheus text of every metric, after `refresh` has set the scrape-time
    /// gauges (under the scrape lock, so two scrapes do not interleave).
    pub fn encode(&self, refresh: impl FnOnce(&Gauges)) -> String {
        let _one = self
            .scraping
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        refresh(&self.gauges);
        let mut text = String::with_capacity(16 * 1024);
        // Writing to a `String` cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(AuditMetrics::default(), UpstreamMetrics::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_counted_under_its_labels_and_timed() {
        let m = Metrics::default();
        let labels = CallLabels {
            server: "demo".into(),
            gen_ai_tool_name: "demo__echo".into(),
            tier: "read",
            outcome: "refused",
            stage: "policy",
        };
        m.call(labels.clone(), Duration::from_millis(2));
        m.call(labels, Duration::from_millis(3));
        let text = m.encode(|g| {
            g.generation.set(4);
        });
        assert!(
            text.contains(
                "mcp_warden_tool_calls_total{server=\"demo\",gen_ai_tool_name=\"demo__echo\",tier=\"read\",outcome=\"refused\",stage=\"policy\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("mcp_warden_tool_call_duration_seconds_count{server=\"demo\",gen_ai_tool_name=\"demo__echo\"} 2"), "{text}");
        assert!(text.contains("mcp_warden_reload_generation 4"), "{text}");
        assert!(text.contains("mcp_warden_build_info{version="), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
