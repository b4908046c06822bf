//! The `[[limit]]` list of `warden.toml`: rate limits (`calls` per `per`, with `burst`)
//! for the identities `who` selects, over `tools` and `tier`, and caps on waiting
//! approval requests (`pending_approvals`). Checked once at load; `limits` applies them.

use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;

use crate::limits::{LimitConfig, PendingRule, RateRule, Who};
use crate::manifest::Tier;
use crate::problem::Problem;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimit {
    who: String,
    tools: Option<String>,
    tier: Option<String>,
    calls: Option<u32>,
    per: Option<String>,
    burst: Option<u32>,
    pending_approvals: Option<u32>,
}

pub(super) fn limits(raw: Vec<RawLimit>, file: &Path, out: &mut Vec<Problem>) -> LimitConfig {
    let mut config = LimitConfig::default();
    for (n, limit) in raw.into_iter().enumerate() {
        let at = format!("`[[limit]]` #{} (who = `{}`)", n + 1, limit.who);
        if let Err(e) = one(limit, &mut config) {
            out.push(Problem::error(file, None, format!("{at}: {e}")));
        }
    }
    config
}

fn one(raw: RawLimit, config: &mut LimitConfig) -> Result<(), String> {
    let who = Who::parse(&raw.who)?;
    match (raw.calls, raw.per.as_deref(), raw.pending_approvals) {
        (None, None, Some(max)) if raw.tools.is_none() && raw.tier.is_none() && raw.burst.is_none() => {
            if max == 0 {
                return Err("`pending_approvals` must be at least 1".into());
            }
            config.pending.push(PendingRule { who, max });
            Ok(())
        }
        (Some(calls), Some(per), None) => {
            let per = humantime::parse_duration(per)
                .map_err(|e| format!("`per = \"{per}\"`: {e}; write e.g. `1m` or `1h`"))?;
            if calls == 0 || per.is_zero() {
                return Err("`calls` and `per` must be more than zero".into());
            }
            let tier = raw
                .tier
                .as_deref()
                .map(|t| Tier::from_str(t).map_err(|_| format!("`tier = \"{t}\"`: say read, transform or act")))
                .transpose()?;
            let tools = raw.tools.unwrap_or_else(|| "*".into());
            let burst = raw.burst.unwrap_or(calls);
            if burst == 0 {
                return Err("`burst` must be at least 1".into());
            }
            let key = format!(
                "{}|{tools}|{}|{calls}|{}|{burst}",
                raw.who,
                tier.map(Tier::as_str).unwrap_or("*"),
                per.as_millis()
            );
            config.rates.push(RateRule {
                who,
                tools,
                tier,
                calls,
                per,
                burst,
                key,
            });
            Ok(())
        }
        _ => Err("a limit is either `calls` with `per` (and optionally `tools`, `tier`, `burst`) or `pending_approvals` alone".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LimitConfig, String> {
        let raw: super::super::RawConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut problems = Vec::new();
        let config = limits(raw.limit, Path::new("w.toml"), &mut problems);
        match problems.first() {
            Some(p) => Err(p.to_string()),
            None => Ok(config),
        }
    }

    #[test]
    fn limits_are_rates_or_pending_caps_and_say_what_is_wrong() {
        let config = parse(
            "[[limit]]\nwho = \"agent:*\"\ntier = \"act\"\ncalls = 10\nper = \"1m\"\n\n[[limit]]\nwho = \"user:*\"\ntools = \"fs/*\"\ncalls = 600\nper = \"1m\"\nburst = 50\n\n[[limit]]\nwho = \"role:intern\"\npending_approvals = 2\n",
        )
        .unwrap();
        assert_eq!(config.rates.len(), 2);
        assert_eq!(config.rates[0].burst, 10);
        assert_eq!(config.rates[0].tier, Some(Tier::Act));
        assert_eq!(config.rates[1].tools, "fs/*");
        assert_eq!(
            config.pending,
            [PendingRule {
                who: Who::Role("role:intern".into()),
                max: 2
            }]
        );
        for (bad, says) in [
            ("who = \"agent:*\"\ncalls = 10", "either `calls` with `per`"),
            (
                "who = \"agent:*\"\ncalls = 10\nper = \"soon\"",
                "`per = \"soon\"`",
            ),
            (
                "who = \"agent:*\"\ncalls = 0\nper = \"1m\"",
                "more than zero",
            ),
            (
                "who = \"agent:*\"\ncalls = 1\nper = \"1m\"\ntier = \"write\"",
                "read, transform or act",
            ),
            ("who = \"\"\ncalls = 1\nper = \"1m\"", "`who` is empty"),
            (
                "who = \"user:*\"\npending_approvals = 2\ntier = \"act\"",
                "either `calls`",
            ),
            ("who = \"user:*\"\npending_approvals = 0", "at least 1"),
            ("who = \"user:*\"\nrate = 5", "unknown field"),
        ] {
            let err = parse(&format!("[[limit]]\n{bad}\n")).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
