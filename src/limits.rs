//! Rate limits per identity: `[[limit]]` rules of `warden.toml`, each a token bucket per
//! identity it selects in a caller's chain (`agent:*`: each agent its own; `user:alice`;
//! `role:support`: each identity holding the role) over the tools and tier it names, and
//! caps on the approval requests one principal may have waiting. Applied after the
//! arguments and before policy; a refusal says when to retry. The buckets live in one
//! [`Counters`], kept across reloads for rules that did not change; a shared store can
//! take its place for several replicas. Decides nothing else.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::grant::matches;
use crate::manifest::Tier;

/// Who a rule is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// An identity, or a pattern with `*` (`agent:*`, `user:*`, `*`).
    Pattern(String),
    /// Each identity holding this role (`role:support`).
    Role(String),
}

impl Who {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "" => Err("`who` is empty: say `agent:*`, `user:alice` or `role:support`".into()),
            t if t.starts_with("role:") && !t.contains('*') => Ok(Who::Role(t.to_string())),
            t => Ok(Who::Pattern(t.to_string())),
        }
    }

    /// Whether `identity` is one this rule counts, given how to ask for roles.
    fn selects(&self, identity: &str, has_role: &dyn Fn(&str, &str) -> bool) -> bool {
        match self {
            Who::Pattern(p) => matches(p, identity),
            Who::Role(role) => has_role(identity, role),
        }
    }
}

/// A `calls` per `per` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateRule {
    pub who: Who,
    /// `server/tool`, with `*`.
    pub tools: String,
    pub tier: Option<Tier>,
    pub calls: u32,
    pub per: Duration,
    pub burst: u32,
    /// The rule as written, which keys its buckets across reloads.
    pub key: String,
}

/// A cap on the approval requests one principal may have waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRule {
    pub who: Who,
    pub max: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitConfig {
    pub rates: Vec<RateRule>,
    pub pending: Vec<PendingRule>,
}

/// A refusal: what limit, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Limited {
    pub message: String,
    pub retry_after: Duration,
}

/// A token bucket: up to `burst` tokens, refilled at `rate` a second.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn full(burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            at: now,
        }
    }

    /// Top the bucket up to `now`.
    pub fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
    }

    pub fn has_token(&self) -> bool {
        self.tokens >= 1.0
    }

    pub fn spend(&mut self) {
        self.tokens -= 1.0;
    }

    /// How long until a token is there, at `rate` a second.
    pub fn wait(&self, rate: f64) -> Duration {
        Duration::from_secs_f64(((1.0 - self.tokens) / rate).max(0.001))
    }

    fn below(&self, burst: f64) -> bool {
        self.tokens < burst
    }
}

/// The buckets, by rule and identity.
#[derive(Default)]
pub struct Counters {
    buckets: Mutex<HashMap<(String, String), Bucket>>,
}

/// Buckets above this many are pruned of the full ones (a full bucket is what a new one
/// would be).
const PRUNE_ABOVE: usize = 10_000;

impl Counters {
    /// Take one call from every bucket `config` applies to `chain` for `object` at
    /// `tier`, or none if any is empty (then say which, and when it has a token again).
    pub fn take(
        &self,
        config: &LimitConfig,
        chain: &[&str],
        object: &str,
        tier: Tier,
        has_role: &dyn Fn(&str, &str) -> bool,
    ) -> Result<(), Limited> {
        let now = Instant::now();
        let applies = applies(config, chain, object, tier, has_role);
        if applies.is_empty() {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        for (rule, identity) in &applies {
            let bucket = refill(&mut buckets, rule, identity, now);
            if !bucket.has_token() {
                return Err(limited(rule, identity, bucket.wait(rule.rate())));
            }
        }
        for (rule, identity) in &applies {
            refill(&mut buckets, rule, identity, now).spend();
        }
        if buckets.len() > PRUNE_ABOVE {
            let full: HashMap<&str, f64> = config
                .rates
                .iter()
                .map(|r| (r.key.as_str(), f64::from(r.burst)))
                .collect();
            buckets.retain(|(key, _), b| full.get(key.as_str()).is_some_and(|f| b.below(*f)));
        }
        Ok(())
    }

    /// [`take`](Self::take) from buckets in a store other replicas share, so a limit
    /// holds for all of them together. A store that cannot answer refuses the call.
    pub async fn take_shared(
        &self,
        store: &crate::store::Store,
        config: &LimitConfig,
        chain: &[&str],
        object: &str,
        tier: Tier,
        has_role: &(dyn Fn(&str, &str) -> bool + Sync),
    ) -> Result<(), Limited> {
        let applies = applies(config, chain, object, tier, has_role);
        if applies.is_empty() {
            return Ok(());
        }
        let asks = applies
            .iter()
            .map(|(rule, identity)| crate::store::BucketAsk {
                rule: rule.key.clone(),
                identity: identity.to_string(),
                rate: rule.rate(),
                burst: f64::from(rule.burst),
            })
            .collect();
        match store.take_tokens(asks).await {
            Ok(None) => Ok(()),
            Ok(Some((empty, tokens))) => {
                let Some((rule, identity)) = applies.get(empty) else {
                    return Ok(());
                };
                let wait = Duration::from_secs_f64(((1.0 - tokens) / rule.rate()).max(0.001));
                Err(limited(rule, identity, wait))
            }
            Err(e) => Err(Limited {
                message: format!(
                    "the rate limit on `{object}` could not be checked ({e}); the call was not made: try again shortly"
                ),
                retry_after: Duration::from_secs(1),
            }),
        }
    }
}

/// The rules of `config` that apply to a call of `object` at `tier`, each with the
/// identity of `chain` it counts.
fn applies<'c>(
    config: &'c LimitConfig,
    chain: &[&'c str],
    object: &str,
    tier: Tier,
    has_role: &dyn Fn(&str, &str) -> bool,
) -> Vec<(&'c RateRule, &'c str)> {
    config
        .rates
        .iter()
        .filter(|r| matches(&r.tools, object) && r.tier.is_none_or(|t| t == tier))
        .flat_map(|r| {
            chain
                .iter()
                .filter(|id| r.who.selects(id, has_role))
                .map(move |id| (r, *id))
        })
        .collect()
}

/// The refusal of a call over `rule` for `identity`, with a token again after `wait`.
fn limited(rule: &RateRule, identity: &str, wait: Duration) -> Limited {
    let wait = round_up(wait);
    Limited {
        message: format!(
            "rate limit: `{identity}` may make {} {}call{} to `{}` every {}; try again in {}",
            rule.calls,
            rule.tier.map(|t| format!("`{t}` ")).unwrap_or_default(),
            if rule.calls == 1 { "" } else { "s" },
            rule.tools,
            humantime::format_duration(rule.per),
            humantime::format_duration(wait),
        ),
        retry_after: wait,
    }
}

/// The bucket of `rule` for `identity`, topped up to `now`.
fn refill<'b>(
    buckets: &'b mut HashMap<(String, String), Bucket>,
    rule: &RateRule,
    identity: &str,
    now: Instant,
) -> &'b mut Bucket {
    let burst = f64::from(rule.burst);
    let bucket = buckets
        .entry((rule.key.clone(), identity.to_string()))
        .or_insert_with(|| Bucket::full(burst, now));
    bucket.refill(now, rule.rate(), burst);
    bucket
}

impl RateRule {
    /// Calls a second.
    fn rate(&self) -> f64 {
        f64::from(self.calls) / self.per.as_secs_f64()
    }
}

fn round_up(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

impl LimitConfig {
    /// Whether any rate limit is configured (without one, a call needs no counting).
    pub fn has_rates(&self) -> bool {
        !self.rates.is_empty()
    }

    /// The smallest cap on waiting approval requests that applies to `principal`.
    pub fn pending_cap(
        &self,
        principal: &str,
        has_role: &dyn Fn(&str, &str) -> bool,
    ) -> Option<u32> {
        self.pending
            .iter()
            .filter(|p| p.who.selects(principal, has_role))
            .map(|p| p.max)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        who: &str,
        tools: &str,
        tier: Option<Tier>,
        calls: u32,
        per: u64,
        burst: u32,
    ) -> RateRule {
        RateRule {
            who: Who::parse(who).unwrap(),
            tools: tools.into(),
            tier,
            calls,
            per: Duration::from_secs(per),
            burst,
            key: format!("{who} {tools} {tier:?} {calls}/{per} {burst}"),
        }
    }

    fn chain<'a>(ids: &[&'a str]) -> Vec<&'a str> {
        ids.to_vec()
    }

    const NO_ROLES: &dyn Fn(&str, &str) -> bool = &|_, _| false;

    #[test]
    fn globs_match_identities_and_tools() {
        for (p, t, m) in [
            ("agent:*", "agent:bot", true),
            ("agent:*", "user:bot", false),
            ("*", "anything", true),
            ("fs/*", "fs/read_file", true),
            ("fs/*", "fsx/read_file", false),
            ("*/delete_*", "git/delete_branch", true),
            ("user:alice", "user:alice", true),
            ("user:alice", "user:alice2", false),
        ] {
            assert_eq!(matches(p, t), m, "{p} {t}");
        }
    }

    /// Each agent gets its own bucket: ten `act` calls a minute, then a refusal that says
    /// when; a token comes back every six seconds; another agent is not held up; `read`
    /// calls are not counted.
    #[tokio::test(start_paused = true)]
    async fn each_identity_has_its_own_bucket_that_refills_at_the_rate() {
        let config = LimitConfig {
            rates: vec![rule("agent:*", "*", Some(Tier::Act), 10, 60, 10)],
            pending: vec![],
        };
        let counters = Counters::default();
        let bot = chain(&["user:alice", "agent:bot"]);
        for _ in 0..10 {
            counters
                .take(&config, &bot, "demo/pay", Tier::Act, NO_ROLES)
                .unwrap();
        }
        let refused = counters
            .take(&config, &bot, "demo/pay", Tier::Act, NO_ROLES)
            .unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(6));
        assert!(
            refused
                .message
                .contains("`agent:bot` may make 10 `act` calls to `*` every 1m; try again in 6s"),
            "{}",
            refused.message
        );
        counters
            .take(&config, &bot, "demo/read", Tier::Read, NO_ROLES)
            .unwrap();
        let other = chain(&["user:alice", "agent:other"]);
        counters
            .take(&config, &other, "demo/pay", Tier::Act, NO_ROLES)
            .unwrap();
        tokio::time::advance(Duration::from_secs(6)).await;
        counters
            .take(&config, &bot, "demo/pay", Tier::Act, NO_ROLES)
            .unwrap();
        assert!(
            counters
                .take(&config, &bot, "demo/pay", Tier::Act, NO_ROLES)
                .is_err()
        );
        tokio::time::advance(Duration::from_secs(3600)).await;
        for _ in 0..10 {
            counters
                .take(&config, &bot, "demo/pay", Tier::Act, NO_ROLES)
                .unwrap();
        }
    }

    /// A call counts against every rule that applies, or against none: a refusal by one
    /// bucket takes nothing from the others.
    #[tokio::test(start_paused = true)]
    async fn a_refused_call_takes_no_token_from_any_bucket() {
        let config = LimitConfig {
            rates: vec![
                rule("user:*", "fs/*", None, 100, 60, 100),
                rule("role:intern", "*", None, 2, 60, 2),
            ],
            pending: vec![],
        };
        let roles = |id: &str, role: &str| id == "agent:intern-bot" && role == "role:intern";
        let counters = Counters::default();
        let intern = chain(&["user:bob", "agent:intern-bot"]);
        counters
            .take(&config, &intern, "fs/read", Tier::Read, &roles)
            .unwrap();
        counters
            .take(&config, &intern, "fs/read", Tier::Read, &roles)
            .unwrap();
        for _ in 0..5 {
            assert!(
                counters
                    .take(&config, &intern, "fs/read", Tier::Read, &roles)
                    .is_err()
            );
        }
        // Bob's own bucket lost only the two calls made: 98 left, with another agent.
        let helper = chain(&["user:bob", "agent:helper"]);
        for _ in 0..98 {
            counters
                .take(&config, &helper, "fs/read", Tier::Read, &roles)
                .unwrap();
        }
        assert!(
            counters
                .take(&config, &helper, "fs/read", Tier::Read, &roles)
                .is_err()
        );
    }

    #[test]
    fn the_smallest_pending_cap_that_applies_wins() {
        let config = LimitConfig {
            rates: vec![],
            pending: vec![
                PendingRule {
                    who: Who::parse("user:*").unwrap(),
                    max: 5,
                },
                PendingRule {
                    who: Who::parse("user:intern").unwrap(),
                    max: 1,
                },
            ],
        };
        assert_eq!(config.pending_cap("user:alice", NO_ROLES), Some(5));
        assert_eq!(config.pending_cap("user:intern", NO_ROLES), Some(1));
        assert_eq!(config.pending_cap("agent:x", NO_ROLES), None);
    }
}
