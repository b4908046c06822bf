//! Flow rules (`policies/flows.toml`): what a session that has read data of some kind may
//! do next. A manifest labels what a tool's results contain (`labels = ["pii"]`) and
//! whether it sends data out (`egress = true`); the gateway remembers which labels a
//! session acquired from results it forwarded (see `session`). A rule says: a session
//! that holds any of these labels, calling a tool that matches, needs an approval (or is
//! refused). Rules only ever make Casbin's decision stricter; a rule that could loosen
//! one is refused at load. It decides nothing about what a session holds.

use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::catalog::ToolRef;
use crate::manifest::{Tier, valid_label};
use crate::problem::{Problem, line_of, toml_error_line, toml_error_message};

/// A label a session acquired, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Acquired {
    pub label: String,
    /// The tool whose result carried it (`server/tool`).
    pub via: String,
    /// When (RFC 3339, seconds).
    pub at: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    flow: Vec<Spanned<RawFlow>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    name: String,
    from: Vec<String>,
    /// `"egress"`: every tool its manifest marks `egress = true` (or no manifest lists).
    to: Option<String>,
    /// Or a `server/tool` pattern with `*`.
    tools: Option<String>,
    tier: Option<String>,
    effect: String,
}

/// What a flow rule does to a call it meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowEffect {
    Approve,
    Deny,
}

#[derive(Debug, Clone)]
enum Target {
    Egress,
    Tools(String),
}

/// One checked rule.
#[derive(Debug, Clone)]
pub struct FlowRule {
    pub name: String,
    from: Vec<String>,
    target: Target,
    tier: Option<Tier>,
    pub effect: FlowEffect,
}

/// The rule a call met, the label that made it apply and where the session got it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowHit {
    pub flow: String,
    pub effect: FlowEffect,
    pub label: String,
    pub via: String,
    pub at: String,
}

impl FlowHit {
    /// Why, in words, for the caller, the approver and the audit record.
    pub fn describe(&self, object: &str, egress: bool) -> String {
        let what = match egress {
            true => format!("`{object}` sends data outside"),
            false => format!("`{object}` is where flow `{}` stops it", self.flow),
        };
        let then = match self.effect {
            FlowEffect::Approve => "approval needed",
            FlowEffect::Deny => "refused",
        };
        format!(
            "this session read `{}` via `{}` at {}; {what}: {then} (flow `{}`)",
            self.label, self.via, self.at, self.flow
        )
    }
}

/// Every flow rule, in file order.
#[derive(Debug, Clone, Default)]
pub struct Flows {
    rules: Vec<FlowRule>,
}

impl Flows {
    /// The rules in `path`; none when there is no such file.
    pub fn load(path: &Path) -> (Self, Vec<Problem>) {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Self::default(), Vec::new()),
            Err(e) => (
                Self::default(),
                vec![Problem::error(path, None, format!("cannot read: {e}"))],
            ),
        }
    }

    /// Parse and check flow rules; every problem is reported with its line.
    pub fn parse(file: &Path, text: &str) -> (Self, Vec<Problem>) {
        let raw: RawFile = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                let p = Problem::error(file, toml_error_line(text, &e), toml_error_message(&e));
                return (Self::default(), vec![p]);
            }
        };
        let mut problems = Vec::new();
        let mut rules: Vec<FlowRule> = Vec::new();
        let mut names = std::collections::HashSet::new();
        for spanned in raw.flow {
            let line = Some(line_of(text, spanned.span().start));
            let raw = spanned.into_inner();
            let mut bad = |m: String| problems.push(Problem::error(file, line, m));
            if !names.insert(raw.name.clone()) {
                bad(format!("flow `{}` is named twice", raw.name));
            }
            match check(raw) {
                Ok(rule) => rules.push(rule),
                Err(errors) => errors.into_iter().for_each(&mut bad),
            }
        }
        (Self { rules }, problems)
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rules(&self) -> &[FlowRule] {
        &self.rules
    }

    /// The strictest rule a call to `tool` meets, given what its session `held`.
    pub fn hit(&self, held: &[Acquired], tool: &ToolRef) -> Option<FlowHit> {
        let object = crate::policy::object_of(tool);
        self.hit_on(held, &object, tool.tier, tool.egress)
    }

    /// The same for a tool named `object` (`server/tool`) at `tier`.
    pub fn hit_on(
        &self,
        held: &[Acquired],
        object: &str,
        tier: Tier,
        egress: bool,
    ) -> Option<FlowHit> {
        let mut found: Option<FlowHit> = None;
        for rule in &self.rules {
            let targets = match &rule.target {
                Target::Egress => egress,
                Target::Tools(pattern) => crate::grant::matches(pattern, object),
            };
            if !targets || rule.tier.is_some_and(|t| t != tier) {
                continue;
            }
            let Some(acquired) = held.iter().find(|a| rule.from.contains(&a.label)) else {
                continue;
            };
            let stricter = found
                .as_ref()
                .is_none_or(|f| rule.effect == FlowEffect::Deny && f.effect != FlowEffect::Deny);
            if stricter {
                found = Some(FlowHit {
                    flow: rule.name.clone(),
                    effect: rule.effect,
                    label: acquired.label.clone(),
                    via: acquired.via.clone(),
                    at: acquired.at.clone(),
                });
            }
        }
        found
    }
}

fn check(raw: RawFlow) -> Result<FlowRule, Vec<String>> {
    let name = raw.name;
    let mut errors = Vec::new();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        errors.push(format!(
            "flow name `{}` must be letters, digits, `-`, `_` or `.`",
            name.escape_default()
        ));
    }
    if raw.from.is_empty() {
        errors.push(format!(
            "flow `{name}`: `from` must name at least one label"
        ));
    }
    for label in raw.from.iter().filter(|l| !valid_label(l)) {
        errors.push(format!(
            "flow `{name}`: label `{}` must be 1-64 of a-z 0-9 _ -",
            label.escape_default()
        ));
    }
    let target = match (raw.to.as_deref(), raw.tools) {
        (Some("egress"), None) => Some(Target::Egress),
        (None, Some(pattern)) if pattern.contains('/') => Some(Target::Tools(pattern)),
        (None, Some(pattern)) => {
            errors.push(format!("flow `{name}`: `tools` `{pattern}` must be a `server/tool` pattern such as `mail/*`"));
            None
        }
        (Some(other), None) => {
            errors.push(format!("flow `{name}`: `to` `{other}` is not known: write `to = \"egress\"`, or `tools = \"server/tool\"` for named tools"));
            None
        }
        _ => {
            errors.push(format!(
                "flow `{name}` needs exactly one of `to = \"egress\"` or `tools = \"server/tool\"`"
            ));
            None
        }
    };
    let tier = raw
        .tier
        .map(|t| t.parse::<Tier>())
        .transpose()
        .unwrap_or_else(|e| {
            errors.push(format!("flow `{name}`: {e}"));
            None
        });
    let effect = match raw.effect.as_str() {
        "approve" => Some(FlowEffect::Approve),
        "deny" => Some(FlowEffect::Deny),
        "allow" | "confirm" | "confirm_in_client" => {
            errors.push(format!("flow `{name}`: `effect = \"{}\"` could make a decision laxer than the policy's; a flow only makes it stricter: `approve` or `deny`", raw.effect));
            None
        }
        other => {
            errors.push(format!(
                "flow `{name}`: unknown effect `{other}`: use `approve` or `deny`"
            ));
            None
        }
    };
    match (target, effect, errors.is_empty()) {
        (Some(target), Some(effect), true) => Ok(FlowRule {
            name,
            from: raw.from,
            target,
            tier,
            effect,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Flows, Vec<Problem>) {
        Flows::parse(Path::new("flows.toml"), text)
    }

    #[test]
    fn a_rule_that_could_loosen_a_decision_is_refused_with_its_line() {
        let (_, problems) = parse(
            "[[flow]]\nname = \"ok\"\nfrom = [\"pii\"]\nto = \"egress\"\neffect = \"approve\"\n\n[[flow]]\nname = \"lax\"\nfrom = [\"pii\"]\nto = \"egress\"\neffect = \"allow\"\n",
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, Some(7));
        assert!(
            problems[0].message.contains("only makes it stricter"),
            "{problems:?}"
        );
    }

    #[test]
    fn every_mistake_is_named() {
        let (_, problems) = parse(
            "[[flow]]\nname = \"a b\"\nfrom = []\nto = \"outside\"\neffect = \"maybe\"\ntier = \"huge\"\n\n[[flow]]\nname = \"x\"\nfrom = [\"PII\"]\ntools = \"mail\"\neffect = \"deny\"\n\n[[flow]]\nname = \"x\"\nfrom = [\"pii\"]\nto = \"egress\"\ntools = \"a/b\"\neffect = \"deny\"\n",
        );
        let all: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        for needle in [
            "flow name `a b`",
            "at least one label",
            "`to` `outside`",
            "unknown effect `maybe`",
            "huge",
            "label `PII`",
            "`tools` `mail`",
            "named twice",
            "exactly one of",
        ] {
            assert!(all.iter().any(|m| m.contains(needle)), "{needle}: {all:?}");
        }
    }
}
