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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acquired {
    pub label: String,
    /// The tool whose result carried it (`server/tool`).
    pub via: String,
    /// When (RFC 3339, seconds).
    pub at: String,
}

/// What a session has done so far, as decisions see it (and, with replicas, as the
/// state database keeps it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    /// Labels held, one record each.
    pub acquired: Vec<Acquired>,
    /// `act` calls forwarded.
    pub act_calls: u32,
    /// Upstreams it has called (ids).
    pub upstreams: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    flow: Vec<Spanned<RawFlow>>,
    #[serde(default)]
    budget: Vec<Spanned<RawBudget>>,
}

/// A session budget: past this much, calls need an approval (or are refused).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    name: String,
    /// `act` calls a session may make.
    act_calls: Option<u32>,
    /// Distinct upstreams a session may call.
    upstreams: Option<u32>,
    /// Distinct labels a session may hold.
    labels: Option<u32>,
    effect: String,
}

/// What a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Counted {
    ActCalls,
    Upstreams,
    Labels,
}

#[derive(Debug, Clone)]
struct Budget {
    name: String,
    counted: Counted,
    limit: u32,
    effect: FlowEffect,
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

/// The rule a call met, and why: the label that made it apply and where the session got
/// it, or the budget it went past.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowHit {
    pub flow: String,
    pub effect: FlowEffect,
    #[serde(flatten)]
    pub why: Why,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Why {
    Label {
        label: String,
        via: String,
        at: String,
    },
    Budget {
        budget: Counted,
        limit: u32,
        count: u32,
    },
}

impl FlowHit {
    /// Why, in words, for the caller, the approver and the audit record.
    pub fn describe(&self, object: &str, egress: bool) -> String {
        let then = match self.effect {
            FlowEffect::Approve => "approval needed",
            FlowEffect::Deny => "refused",
        };
        let flow = &self.flow;
        match &self.why {
            Why::Label { label, via, at } => {
                let what = match egress {
                    true => format!("`{object}` sends data outside"),
                    false => format!("`{object}` is where flow `{flow}` stops it"),
                };
                format!(
                    "this session read `{label}` via `{via}` at {at}; {what}: {then} (flow `{flow}`)"
                )
            }
            Why::Budget {
                budget,
                limit,
                count,
            } => {
                let done = match budget {
                    Counted::ActCalls => format!("made {count} `act` calls"),
                    Counted::Upstreams => {
                        format!("called {count} upstreams and `{object}` would add one")
                    }
                    Counted::Labels => format!("read data with {count} labels"),
                };
                format!(
                    "this session has {done}, past the {limit} that budget `{flow}` allows: {then} for `{object}`"
                )
            }
        }
    }
}

/// Every flow rule and session budget, in file order.
#[derive(Debug, Clone, Default)]
pub struct Flows {
    rules: Vec<FlowRule>,
    budgets: Vec<Budget>,
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
        let mut budgets = Vec::new();
        for spanned in raw.budget {
            let line = Some(line_of(text, spanned.span().start));
            let raw = spanned.into_inner();
            if !names.insert(raw.name.clone()) {
                problems.push(Problem::error(
                    file,
                    line,
                    format!("flow `{}` is named twice", raw.name),
                ));
            }
            match check_budget(raw) {
                Ok(budget) => budgets.push(budget),
                Err(e) => problems.push(Problem::error(file, line, e)),
            }
        }
        (Self { rules, budgets }, problems)
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.budgets.is_empty()
    }

    pub fn rules(&self) -> &[FlowRule] {
        &self.rules
    }

    /// Whether any rule or budget could apply to a call to `tool`, whatever its session
    /// has done (when none could, the session's record is not needed to decide it).
    pub fn could_hit(&self, tool: &ToolRef) -> bool {
        // The tool's object (`server/tool`) is made only if a rule names tools by pattern.
        let mut object = None;
        let rules = self.rules.iter().any(|rule| {
            let targets = match &rule.target {
                Target::Egress => tool.egress,
                Target::Tools(pattern) => {
                    let object = object.get_or_insert_with(|| crate::policy::object_of(tool));
                    crate::grant::matches(pattern, object)
                }
            };
            targets && rule.tier.is_none_or(|t| t == tool.tier)
        });
        let budgets = self.budgets.iter().any(|b| match b.counted {
            Counted::ActCalls => tool.tier == Tier::Act,
            Counted::Upstreams | Counted::Labels => true,
        });
        rules || budgets
    }

    /// The strictest rule a call to `tool` meets, given what its session has done.
    pub fn hit(&self, session: &SessionView, tool: &ToolRef) -> Option<FlowHit> {
        let object = crate::policy::object_of(tool);
        self.hit_on(session, &object, tool.tier, tool.egress)
    }

    /// The same for a tool named `object` (`server/tool`) at `tier`: the first `deny`
    /// that applies, else the first `approve`.
    pub fn hit_on(
        &self,
        session: &SessionView,
        object: &str,
        tier: Tier,
        egress: bool,
    ) -> Option<FlowHit> {
        let labels = self
            .rules
            .iter()
            .filter_map(|rule| rule.hit(session, object, tier, egress));
        let budgets = self
            .budgets
            .iter()
            .filter_map(|b| b.hit(session, object, tier));
        let mut found: Option<FlowHit> = None;
        for hit in labels.chain(budgets) {
            let stricter = found
                .as_ref()
                .is_none_or(|f| hit.effect == FlowEffect::Deny && f.effect != FlowEffect::Deny);
            if stricter {
                found = Some(hit);
            }
        }
        found
    }
}

impl FlowRule {
    fn hit(
        &self,
        session: &SessionView,
        object: &str,
        tier: Tier,
        egress: bool,
    ) -> Option<FlowHit> {
        let targets = match &self.target {
            Target::Egress => egress,
            Target::Tools(pattern) => crate::grant::matches(pattern, object),
        };
        if !targets || self.tier.is_some_and(|t| t != tier) {
            return None;
        }
        let acquired = session
            .acquired
            .iter()
            .find(|a| self.from.contains(&a.label))?;
        Some(FlowHit {
            flow: self.name.clone(),
            effect: self.effect,
            why: Why::Label {
                label: acquired.label.clone(),
                via: acquired.via.clone(),
                at: acquired.at.clone(),
            },
        })
    }
}

impl Budget {
    /// Whether this call goes past the budget: an `act` call after `limit` of them, a
    /// call to a new upstream after `limit` upstreams, any call holding more than `limit`
    /// labels.
    fn hit(&self, session: &SessionView, object: &str, tier: Tier) -> Option<FlowHit> {
        let server = object.split_once('/').map_or(object, |(s, _)| s);
        let n = |len: usize| u32::try_from(len).unwrap_or(u32::MAX);
        let (past, count) = match self.counted {
            Counted::ActCalls => (
                tier == Tier::Act && session.act_calls >= self.limit,
                session.act_calls,
            ),
            Counted::Upstreams => {
                let new = !session.upstreams.iter().any(|u| u == server);
                let count = n(session.upstreams.len());
                (new && count >= self.limit, count)
            }
            Counted::Labels => {
                let count = n(session.acquired.len());
                (count > self.limit, count)
            }
        };
        past.then(|| FlowHit {
            flow: self.name.clone(),
            effect: self.effect,
            why: Why::Budget {
                budget: self.counted,
                limit: self.limit,
                count,
            },
        })
    }
}

fn effect_of(name: &str, effect: &str) -> Result<FlowEffect, String> {
    match effect {
        "approve" => Ok(FlowEffect::Approve),
        "deny" => Ok(FlowEffect::Deny),
        "allow" | "confirm" | "confirm_in_client" => Err(format!(
            "flow `{name}`: `effect = \"{effect}\"` could make a decision laxer than the policy's; a flow only makes it stricter: `approve` or `deny`"
        )),
        other => Err(format!(
            "flow `{name}`: unknown effect `{other}`: use `approve` or `deny`"
        )),
    }
}

fn check_budget(raw: RawBudget) -> Result<Budget, String> {
    let name = raw.name;
    let (counted, limit) = match (raw.act_calls, raw.upstreams, raw.labels) {
        (Some(n), None, None) => (Counted::ActCalls, n),
        (None, Some(n), None) => (Counted::Upstreams, n),
        (None, None, Some(n)) => (Counted::Labels, n),
        _ => {
            return Err(format!(
                "budget `{name}` needs exactly one of `act_calls`, `upstreams` or `labels`"
            ));
        }
    };
    Ok(Budget {
        effect: effect_of(&name, &raw.effect)?,
        name,
        counted,
        limit,
    })
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
    let effect = effect_of(&name, &raw.effect)
        .map_err(|e| errors.push(e))
        .ok();
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

    fn session(labels: &[&str], act_calls: u32, upstreams: &[&str]) -> SessionView {
        SessionView {
            acquired: labels
                .iter()
                .map(|l| Acquired {
                    label: l.to_string(),
                    via: "crm/get".into(),
                    at: "t".into(),
                })
                .collect(),
            act_calls,
            upstreams: upstreams.iter().map(|u| u.to_string()).collect(),
        }
    }

    #[test]
    fn budgets_count_act_calls_new_upstreams_and_labels_and_a_deny_wins() {
        let (flows, problems) = parse(
            "[[budget]]\nname = \"acts\"\nact_calls = 2\neffect = \"approve\"\n\n[[budget]]\nname = \"spread\"\nupstreams = 1\neffect = \"deny\"\n\n[[budget]]\nname = \"hoard\"\nlabels = 1\neffect = \"approve\"\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let hit = |s: &SessionView, object: &str, tier| {
            flows
                .hit_on(s, object, tier, false)
                .map(|h| (h.flow, h.effect))
        };
        // Two act calls made: the third needs approval; a read does not.
        let two = session(&[], 2, &["crm"]);
        assert_eq!(
            hit(&two, "crm/refund", Tier::Act),
            Some(("acts".into(), FlowEffect::Approve))
        );
        assert_eq!(hit(&two, "crm/get", Tier::Read), None);
        assert_eq!(
            hit(&session(&[], 1, &["crm"]), "crm/refund", Tier::Act),
            None
        );
        // One upstream called: a second one is refused, and the deny outranks the approve.
        assert_eq!(
            hit(&two, "mail/send", Tier::Act),
            Some(("spread".into(), FlowEffect::Deny))
        );
        // Holding more labels than allowed: every call needs approval.
        let hoard = session(&["pii", "secrets"], 0, &["crm"]);
        let found = flows.hit_on(&hoard, "crm/get", Tier::Read, false).unwrap();
        assert_eq!(
            found.why,
            Why::Budget {
                budget: Counted::Labels,
                limit: 1,
                count: 2
            }
        );
        assert!(found.describe("crm/get", false).contains("budget `hoard`"));
        assert_eq!(
            hit(&session(&["pii"], 0, &["crm"]), "crm/get", Tier::Read),
            None
        );
    }

    #[test]
    fn a_budget_counts_one_thing_and_never_loosens() {
        let (_, problems) = parse(
            "[[budget]]\nname = \"two\"\nact_calls = 1\nlabels = 1\neffect = \"approve\"\n\n[[budget]]\nname = \"lax\"\nupstreams = 3\neffect = \"allow\"\n",
        );
        let all: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert!(
            all.iter().any(|m| m.contains("exactly one of `act_calls`")),
            "{all:?}"
        );
        assert!(
            all.iter().any(|m| m.contains("only makes it stricter")),
            "{all:?}"
        );
    }
}
